"""ResNet's run, whatever executes the model: PyTorch (references/resnet/train.py) or the LiteRT
interpreter on a phone (references/litert/resnet.py). Both hand ``run`` a :class:`Backend` --
an epoch's batches, a train step at a learning rate, top-1 on the validation set -- and get the
same MLPerf run around it: the same data, schedule, timed window, evaluation, MLLOG events and
result.json. The run is the v0.5 reference's: SGD with momentum, 5 warmup epochs then step
decay, evaluation on the whole validation set every ``epochs_per_eval`` epochs, stop at the
first evaluation that meets the target.

The timed window (run_start -> run_stop) holds the epochs: decoding and augmenting the training
images is inside it, as in the reference's input pipeline; scanning the folders and building
the model happen before it (init).

Torch-free: stdout belongs to the MLLOG lines; progress for people goes to stderr.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from mlperf_logging.mllog import constants as C

from references.common import datasets, distributed
from references.common.harness import TimedRun, finish_run, log_cache_clear, projection_for, say
from references.common.loop import Bounds, train_epochs
from references.common.mllogging import EdgeKeys, MLLog
from references.common.targets import target_for
from references.resnet import data as rdata
from references.resnet.config import ResnetConfig

BENCHMARK = "resnet"
#: Images per evaluation batch of the synthetic validation set.
EVAL_BATCH = 256


def lr_at(step: int, cfg: ResnetConfig, steps_per_epoch: int) -> float:
    """The reference's schedule: base_lr x batch/256, reached linearly over warmup_epochs, then
    x0.1 at each boundary epoch (learning_rate_with_decay in resnet_run_loop.py)."""
    peak = cfg.base_learning_rate * cfg.batch_size / 256
    warmup_steps = int(steps_per_epoch * cfg.warmup_epochs)
    if step < warmup_steps:
        return peak * step / warmup_steps
    epoch = step / steps_per_epoch
    return peak * 0.1 ** sum(epoch >= b for b in cfg.decay_boundary_epochs)


@dataclass
class Data:
    """What a run trains and evaluates on: the synthetic arrays, or the ImageNet folders as
    datasets of (image array, label) items (decoded lazily, by whichever loader the backend
    uses)."""

    classes: int
    n_train: int
    n_val: int
    verdict: Any
    files: list[Path] | None = None
    synthetic: rdata.Synthetic | None = None
    train_set: rdata.ImageDataset | None = None
    val_set: rdata.ImageDataset | None = None

    def synthetic_batches(self, batch_size: int, order: np.ndarray | None, train: bool = True
                          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The synthetic split's (images, labels) in ``order`` (None: as stored)."""
        s = self.synthetic
        images, labels = ((s.train_images, s.train_labels) if train
                          else (s.val_images, s.val_labels))
        order = np.arange(len(labels)) if order is None else order
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            yield images[idx], labels[idx]


def load(cfg: ResnetConfig, data_dir: Path | None, seed: int) -> Data:
    """The run's data: the synthetic set for ``seed``, or the scanned folders (nothing decoded:
    cheap), with the verdict on what they hold (references/common/datasets.py)."""
    if cfg.dataset == "synthetic":
        s = rdata.synthetic(cfg, seed)
        return Data(cfg.synthetic_classes, len(s.train_labels), len(s.val_labels),
                    datasets.synthetic(f"synthetic ({cfg.synthetic_classes} planted classes)"),
                    synthetic=s)
    wnids, train_split, val_split = rdata.scan(data_dir)
    # Counted from the file lists the scan made anyway: nothing more is read.
    verdict = datasets.identify(
        BENCHMARK, "imagenet", {"train images": len(train_split), "classes": len(wnids),
                                "val images": len(val_split)},
        where=f"ILSVRC-style folders in {Path(data_dir).name}/")
    return Data(len(wnids), len(train_split), len(val_split), verdict,
                files=train_split.files + val_split.files,
                train_set=rdata.ImageDataset(train_split, True, cfg, seed),
                val_set=rdata.ImageDataset(val_split, False, cfg, seed))


class Backend(Protocol):
    """What executes ResNet for a run."""

    description: str          # for the progress line, e.g. "1 thread(s) on cpu"
    model_name: str           # e.g. "ResNet-14 v1.5 (base width 8; the reference has 64)"

    def train_batches(self, data: Data, epoch: int) -> Iterator[tuple]:
        """One epoch's (images, labels) batches, shuffled, in the backend's own arrays."""

    def train_step(self, batch: tuple, lr: float) -> Any:
        """One SGD step at ``lr``; the batch's mean loss (a float or a device tensor)."""

    def top1(self, data: Data) -> float:
        """Fraction of the validation images whose highest-scoring class is the label."""

    def after_run(self, out_dir: Path) -> None:
        """After run_stop (untimed): e.g. write the checkpoint the config asks for."""


def run(cfg: ResnetConfig, mode: str, division: str, data_dir: Path | None, out_dir: Path,
        seed: int, platform: str, log: MLLog, timed: TimedRun,
        make_backend: Callable[[Data], Backend]) -> int:
    """One ResNet run; ``make_backend(data)`` builds the model and its optimizer, seeded (in
    init, untimed), for the data's classes."""
    target = target_for(BENCHMARK, mode)
    group = distributed.current()          # several nodes: rank 0 evaluates for the group
    # Scanning the folders is cheap and names a wrong one before the MLPerf init.
    data = load(cfg, data_dir, seed)
    datasets.require_mlperf(data.verdict, BENCHMARK, mode, division)

    # -- init: untimed ------------------------------------------------------------------------
    log_cache_clear(log, data.files)
    log.start(C.INIT_START)
    log.submission(BENCHMARK, mode, platform, division)
    log.event(C.SEED, seed)
    backend = make_backend(data)
    steps_per_epoch = math.ceil(data.n_train / cfg.batch_size)
    log_hyperparameters(log, cfg, backend.model_name, data.n_train, data.n_val,
                        group.world_size)
    say(f"resnet {mode} ({division} division): {backend.model_name}, {data.classes} classes, "
        f"{data.n_train:,} training / {data.n_val:,} validation images ({data.verdict.label}), "
        f"{steps_per_epoch:,} steps of {cfg.batch_size} per epoch; target {target.metric} "
        f">= {target.value}; {backend.description}")
    if mode == "full" and not data.verdict.is_mlperf:
        say("note: the MLPerf target is defined on ImageNet; this run is not comparable")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = timed.start()
    step_count = [0]

    def step(batch):
        loss = backend.train_step(batch, lr_at(step_count[0], cfg, steps_per_epoch))
        step_count[0] += 1
        return loss

    bounds = Bounds(cfg.max_epochs, cfg.max_steps, cfg.max_seconds, cfg.epochs_per_eval)
    samples_in = getattr(backend, "samples_in", lambda b: len(b[1]))
    out = train_epochs(log, bounds, target, batches=lambda epoch: backend.train_batches(
                           data, epoch), step=step, batch_size_of=samples_in,
                       evaluate=lambda: group.from_lead(lambda: backend.top1(data)),
                       steps_per_epoch=steps_per_epoch, metric=target.metric,
                       agree=group.any_true)
    run_stop_ms = timed.stop(C.SUCCESS if out.success else C.ABORTED)
    backend.after_run(Path(out_dir))

    # -- report -------------------------------------------------------------------------------
    epoch_time_s = out.epoch_time_s(steps_per_epoch)
    basis = (f"{cfg.epochs_to_converge:g} epochs (the v0.5 reference's schedule, "
             "imagenet_main.py train_epochs=90: an upper bound, no convergence epoch is "
             "published) x measured training epoch time; evaluation time excluded")
    if cfg.arch != "resnet50":
        basis += f"; the epoch count is for ResNet-50 on ImageNet, this run: {backend.model_name}"
    return finish_run(
        out_dir, benchmark=BENCHMARK, mode=mode, division=division, target=target,
        quality=out.quality,
        success=out.success, epochs=out.epochs, samples=out.samples,
        timed_window_s=(run_stop_ms - run_start_ms) / 1000.0, throughput=out.throughput(),
        epoch_time_s=epoch_time_s,
        projection=projection_for(mode, data.verdict, cfg.epochs_to_converge,
                                  ResnetConfig.epochs_to_converge, epoch_time_s, basis),
        stop_reason=out.stop_reason, dataset=data.verdict.label, cfg=cfg, seed=seed,
        platform=platform, first_losses=getattr(backend, "first_losses", None))


def log_hyperparameters(log: MLLog, cfg: ResnetConfig, model_name: str, n_train: int,
                        n_val: int, nodes: int = 1) -> None:
    # The keys the MLPerf 0.6.0 resnet.yaml rules require, and the reference's others. The
    # batch is the global one whatever the nodes (each trains its slice), and the learning rate
    # scales linearly with it: base_lr x global batch / 256.
    log.event(EdgeKeys.MODEL_NAME, model_name)
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
    log.event(EdgeKeys.NODES, nodes)
    log.event(C.OPT_NAME, C.SGD)
    log.event(C.OPT_BASE_LR, cfg.base_learning_rate * cfg.batch_size / 256)
    log.event(C.OPT_LR_WARMUP_EPOCHS, cfg.warmup_epochs)
    log.event(C.OPT_LR_DECAY_BOUNDARY_EPOCHS, list(cfg.decay_boundary_epochs))
    log.event(C.OPT_WEIGHT_DECAY, cfg.weight_decay)
    log.event(EdgeKeys.SGD_MOMENTUM, cfg.momentum)
    log.event(EdgeKeys.LABEL_SMOOTHING, cfg.label_smoothing)
    # Batch norm's statistics span each node's slice of the global batch.
    log.event(C.MODEL_BN_SPAN, cfg.batch_size // nodes)
    log.event(C.TRAIN_SAMPLES, n_train)
    log.event(C.EVAL_SAMPLES, n_val)
