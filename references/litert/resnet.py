"""ResNet in the LiteRT interpreter: the run of references/resnet/loop.py -- the same data,
schedule, timed window, evaluation, MLLOG events and result.json as the PyTorch reference --
with a .tflite ResNet v1.5 (built by litert_models/resnet.py) as the model.

Images reach the interpreter as the reference's arrays: the synthetic set's, or ImageNet JPEGs
decoded and augmented by the reference's own transforms (references/resnet/data.py, Pillow) in
threads, a batch ahead of the step. The learning rate of each step is the reference's schedule
(loop.lr_at), passed to ``train``. Each run starts from its own seed's weights
(resnet_state.initial_state, put in with ``restore``); the artifact must have been built for
this run's config and number of classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from litert_models.resnet_state import initial_state
from references.common.errors import ConfigError
from references.litert.interpreter import TrainingModel
from references.litert.ncf import check_built_config
from references.resnet import data as rdata
from references.resnet import loop
from references.resnet.config import ResnetConfig, describe

# What must match between the artifact's label and the run (label key -> config field): what
# the model's graph holds (shapes, optimiser constants). The schedule stays on the host.
MUST_MATCH = ("arch", "base_width", "image_size", "batch_size", "momentum", "weight_decay",
              "label_smoothing")


class LiteRTBackend:
    """ResNet in the interpreter (loop.Backend)."""

    def __init__(self, model: TrainingModel, cfg: ResnetConfig, seed: int,
                 description: str) -> None:
        self.model, self.cfg, self.description = model, cfg, description
        self.model_name = describe(cfg.arch, cfg.base_width)
        self.rng = np.random.default_rng(seed)
        self.threads = rdata.decode_workers(cfg)

    def train_batches(self, data: loop.Data, epoch: int):
        order = self.rng.permutation(data.n_train)
        if data.synthetic is not None:
            return data.synthetic_batches(self.cfg.batch_size, order)
        data.train_set.epoch = epoch           # a fresh augmentation stream per epoch
        return rdata.array_batches(data.train_set, self.cfg.batch_size, order, self.threads)

    def train_step(self, batch, lr: float) -> float:
        images, labels = batch
        return self.model.train_batch(images=images, labels=labels, lr=np.float32(lr))

    def top1(self, data: loop.Data) -> float:
        if data.synthetic is not None:
            batches = data.synthetic_batches(loop.EVAL_BATCH, None, train=False)
        else:
            batches = rdata.array_batches(data.val_set, self.cfg.batch_size, None, self.threads)
        right = total = 0
        for images, labels in batches:
            right += int((self.model.infer_batch(images=images).argmax(1) == labels).sum())
            total += len(labels)
        return right / total if total else 0.0

    def after_run(self, out_dir: Path) -> None:
        """Nothing: save_checkpoint is refused before the run (check_config)."""


def check_config(label: dict, cfg: ResnetConfig) -> None:
    """ConfigError naming the first difference between the artifact's config and the run's
    (checked before anything is logged)."""
    check_built_config(label, cfg, "resnet", MUST_MATCH)
    if cfg.save_checkpoint:
        raise ConfigError("save_checkpoint writes a PyTorch checkpoint (a Mask R-CNN backbone): "
                          "run it with the torch runtime")


def make_backend(model: TrainingModel, label: dict, cfg: ResnetConfig, seed: int,
                 data: loop.Data, description: str) -> LiteRTBackend:
    """The backend with the run's seeded initial weights loaded."""
    classes = (label.get("sizes") or {}).get("classes")
    if classes != data.classes:
        raise ConfigError(f"the model artifact classifies {classes} classes; this run's data "
                          f"has {data.classes:,}: build one for this data")
    if model.batch_size != cfg.batch_size:
        raise ConfigError(f"the model trains batches of {model.batch_size}, the run asks for "
                          f"{cfg.batch_size}")
    model.load_state(initial_state(cfg, data.classes, seed))
    return LiteRTBackend(model, cfg, seed, description)
