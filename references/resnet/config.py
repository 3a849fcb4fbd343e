"""ResNet configuration: one typed dataclass and its three presets.

full() carries the MLPerf training v0.5 reference (image_classification/tensorflow,
official/resnet): ``imagenet_main.py --batch_size 64 --version 1 --resnet_size 50`` (run.sh;
1024 on 8 GPUs), base learning rate 0.128 per 256 images scaled linearly with the batch
(``_BASE_LR = 0.128``, ``batch_denom=256``), a linear warmup over the first 5 epochs
(resnet_run_loop ``warmup_steps = int(batches_per_epoch * 5)``), then x0.1 steps at epochs 30, 60,
80 and 90 (``boundary_epochs``, ``decay_rates``), SGD with momentum 0.9, weight decay 1e-4 on
everything but batch norm, no label smoothing (the v0.6 reference added 0.1), 224x224 crops.

Torch-free: the agent builds and validates configs without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from references.common.errors import ConfigError

ARCHS = {"resnet50": (3, 4, 6, 3), "resnet26": (2, 2, 2, 2), "resnet14": (1, 1, 1, 1)}


def describe(arch: str, base_width: int) -> str:
    """'ResNet-50 v1.5', or e.g. 'ResNet-14 v1.5 (base width 8; the reference has 64)'."""
    name = f"ResNet-{2 + 3 * sum(ARCHS[arch])} v1.5"
    return name if base_width == 64 else f"{name} (base width {base_width}; the reference has 64)"


@dataclass(frozen=True)
class ResnetConfig:
    # The v0.5/v0.6 rules let a closed submission choose these (compliance resnet.yaml logs
    # them: global_batch_size, opt_base_learning_rate, opt_learning_rate_warmup_epochs,
    # opt_learning_rate_decay_boundary_epochs); everything else is the reference's.
    CLOSED_TUNABLE: ClassVar[tuple[str, ...]] = (
        "batch_size", "base_learning_rate", "warmup_epochs", "decay_boundary_epochs")
    # Upper bounds on sizes and counts a job may ask for (each element, for tuples).
    LIMITS: ClassVar[dict[str, float]] = {
        "image_size": 1024, "resize_size": 2048, "workers": 256, "base_width": 1024,
        "batch_size": 65536, "warmup_epochs": 1000, "decay_boundary_epochs": 10**4,
        "epochs_per_eval": 1000, "max_epochs": 10**4, "epochs_to_converge": 10**4,
        "synthetic_classes": 1000, "synthetic_train_images": 10**6,
        "synthetic_val_images": 10**6, "threads": 1024}

    # -- data -------------------------------------------------------------------------------
    dataset: str = "imagenet"             # "imagenet" (the folder --data names) or "synthetic"
    image_size: int = 224                 # training crop and evaluation center crop
    resize_size: int = 256                # evaluation: shorter side resized to this first
    min_crop_area: float = 0.05           # reference sample_distorted_bounding_box area_range
    skip_bad_images: bool = False         # an unreadable JPEG: skip it (and say so) or fail
    workers: int = -1                     # decoding processes; -1 = one per spare CPU

    # -- model ------------------------------------------------------------------------------
    arch: str = "resnet50"                # resnet50 (reference), resnet26, resnet14: same family
    base_width: int = 64                  # channels of the stem; 64 in the reference

    # -- optimisation -------------------------------------------------------------------------
    batch_size: int = 64                  # run.sh --batch_size 64
    base_learning_rate: float = 0.128     # per 256 images (_BASE_LR), x batch_size / 256
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    warmup_epochs: int = 5
    decay_boundary_epochs: tuple[int, ...] = (30, 60, 80, 90)

    # -- evaluation and stopping -------------------------------------------------------------
    epochs_per_eval: int = 1              # ResnetArgParser epochs_between_evals default
    max_epochs: int = 90                  # imagenet_main.py train_epochs=90
    max_steps: int | None = None
    max_seconds: float | None = None

    # -- projection (reduced mode) -------------------------------------------------------------
    # The reference's schedule length, train_epochs = 90 (imagenet_main.py): its README gives no
    # convergence epoch, so the projection uses the schedule it trains by -- an upper bound.
    epochs_to_converge: float = 90.0

    # -- synthetic data (smoke only) ------------------------------------------------------------
    synthetic_classes: int = 4
    synthetic_train_images: int = 512
    synthetic_val_images: int = 256
    synthetic_signal: float = 1.0         # planted pattern amplitude vs unit noise

    # -- machine -------------------------------------------------------------------------------
    threads: int = 0
    device: str = "auto"
    # Write the trained weights to OUT/checkpoint.pt after run_stop (outside the timed window):
    # the backbone a Mask R-CNN run starts from (--set backbone_checkpoint=PATH).
    save_checkpoint: bool = False

    @classmethod
    def full(cls) -> ResnetConfig:
        """Train ResNet-50 v1.5 to 0.749 top-1 on ImageNet with the v0.5 recipe."""
        return cls()

    @classmethod
    def reduced(cls) -> ResnetConfig:
        """The full model and data, bounded: one epoch or five minutes."""
        return replace(cls(), max_epochs=1, max_seconds=300.0)

    @classmethod
    def smoke(cls) -> ResnetConfig:
        """ResNet-14 v1.5 at base width 8 on 32x32 synthetic images of 4 planted classes."""
        return replace(cls(), dataset="synthetic", image_size=32, resize_size=32, arch="resnet14",
                       base_width=8, batch_size=32, base_learning_rate=0.8, warmup_epochs=1,
                       decay_boundary_epochs=(30,), max_epochs=10, workers=0)

    def data_folder(self) -> str | None:
        return None if self.dataset == "synthetic" else self.dataset

    def validate(self) -> ResnetConfig:
        checks = [
            (self.dataset in ("imagenet", "synthetic"), "dataset must be imagenet or synthetic"),
            (self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}"),
            (self.base_width >= 1, "base_width must be >= 1"),
            (self.image_size >= 16, "image_size must be >= 16"),
            (self.resize_size >= self.image_size, "resize_size must be >= image_size"),
            (0 < self.min_crop_area <= 1, "min_crop_area must be in (0, 1]"),
            (self.workers >= -1, "workers must be >= 0 (or -1: automatic)"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.base_learning_rate > 0, "base_learning_rate must be > 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.warmup_epochs >= 1, "warmup_epochs must be >= 1 (MLPerf logs it, > 0)"),
            (list(self.decay_boundary_epochs) == sorted(set(self.decay_boundary_epochs))
             and min(self.decay_boundary_epochs) >= 1,
             "decay_boundary_epochs must be increasing positive epochs"),
            (self.epochs_per_eval >= 1, "epochs_per_eval must be >= 1"),
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0"),
            (self.epochs_to_converge > 0, "epochs_to_converge must be > 0"),
            (self.synthetic_classes >= 2, "synthetic_classes must be >= 2"),
            (min(self.synthetic_train_images, self.synthetic_val_images) >= 1,
             "synthetic image counts must be >= 1"),
            (self.threads >= 0, "threads must be >= 0 (0 = automatic)"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self
