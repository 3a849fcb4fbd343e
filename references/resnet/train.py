"""Train ResNet until top-1 reaches the target, as the MLPerf v0.5 reference does: SGD with
momentum, 5 warmup epochs then step decay, evaluation on the whole validation set every
``epochs_per_eval`` epochs, stop at the first evaluation that meets the target.

The timed window (run_start -> run_stop) holds the epochs: decoding and augmenting the training
images is inside it, as in the reference's input pipeline; scanning the folders and building
the model happen before it (init).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path
from typing import TextIO

import torch
import torch.nn as nn
from mlperf_logging.mllog import constants as C

from references.common import datasets, runtime
from references.common.errors import one_line_from_workers
from references.common.harness import (
    TimedRun,
    finish_run,
    log_cache_clear,
    projection_for,
    run_reference,
    say,
)
from references.common.loop import Bounds, train_epochs
from references.common.mllogging import EdgeKeys, MLLog
from references.common.targets import target_for
from references.resnet import data as rdata
from references.resnet.config import ResnetConfig
from references.resnet.model import ResNet

BENCHMARK = "resnet"


def lr_at(step: int, cfg: ResnetConfig, steps_per_epoch: int) -> float:
    """The reference's schedule: base_lr x batch/256, reached linearly over warmup_epochs, then
    x0.1 at each boundary epoch (learning_rate_with_decay in resnet_run_loop.py)."""
    peak = cfg.base_learning_rate * cfg.batch_size / 256
    warmup_steps = int(steps_per_epoch * cfg.warmup_epochs)
    if step < warmup_steps:
        return peak * step / warmup_steps
    epoch = step / steps_per_epoch
    return peak * 0.1 ** sum(epoch >= b for b in cfg.decay_boundary_epochs)


def make_optimizer(model: nn.Module, cfg: ResnetConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on everything but batch norm (the reference's
    loss_filter_fn leaves batch_normalization variables out of its L2 term)."""
    decay, no_decay = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            (no_decay if isinstance(module, nn.BatchNorm2d) else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=0.0, momentum=cfg.momentum)


@torch.inference_mode()
def top1(model: nn.Module, batches, device: str) -> float:
    """Fraction of images whose highest-scoring class is the label."""
    model.eval()
    right = total = 0
    for batch in batches:
        if batch is None:
            continue
        images, labels = batch
        right += (model(images.to(device)).argmax(1) == labels.to(device)).sum().item()
        total += len(labels)
    model.train()
    return right / total if total else 0.0


def main(cfg: ResnetConfig, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None) -> int:
    """Run ResNet in ``mode``; write OUT/mllog.txt and OUT/result.json; return the exit code."""
    return run_reference(_train, rdata.check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division)


def _loaders(cfg: ResnetConfig, data_dir: Path | None, seed: int):
    """(train batches(epoch), val batches(), n_train, n_val, classes, verdict, files): the
    verdict says what the folders hold, by their counts (references/common/datasets.py)."""
    if cfg.dataset == "synthetic":
        xt, yt, xv, yv = rdata.synthetic(cfg, seed)
        gen = torch.Generator().manual_seed(seed)

        def train(epoch: int):
            order = torch.randperm(len(yt), generator=gen)
            for lo in range(0, len(order), cfg.batch_size):
                idx = order[lo:lo + cfg.batch_size]
                yield xt[idx], yt[idx]

        def val():
            for lo in range(0, len(yv), 256):
                yield xv[lo:lo + 256], yv[lo:lo + 256]

        return (train, val, len(yt), len(yv), cfg.synthetic_classes,
                datasets.synthetic(f"synthetic ({cfg.synthetic_classes} planted classes)"), None)

    wnids, train_split, val_split = rdata.scan(data_dir)
    # Counted from the file lists the scan made anyway: nothing more is read.
    verdict = datasets.identify(
        BENCHMARK, "imagenet", {"train images": len(train_split), "classes": len(wnids),
                                "val images": len(val_split)},
        where=f"ILSVRC-style folders in {Path(data_dir).name}/")
    workers = cfg.workers if cfg.workers >= 0 else max(0, min(8, runtime.available_cpus() - 1))
    train_set = rdata.ImageDataset(train_split, True, cfg, seed)
    val_set = rdata.ImageDataset(val_split, False, cfg, seed)
    gen = torch.Generator().manual_seed(seed)
    common = dict(collate_fn=rdata.collate, num_workers=workers,
                  persistent_workers=False, pin_memory=False)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size,
                                               shuffle=True, generator=gen, **common)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=cfg.batch_size, **common)

    def train(epoch: int):
        train_set.epoch = epoch          # a fresh augmentation stream per epoch
        return (b for b in one_line_from_workers(train_loader) if b is not None)

    files = train_split.files + val_split.files
    return (train, lambda: one_line_from_workers(val_loader), len(train_split),
            len(val_split), len(wnids), verdict, files)


def _train(cfg: ResnetConfig, mode: str, division: str, data_dir: Path | None, out_dir: Path,
           seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    target = target_for(BENCHMARK, mode)
    torch.manual_seed(seed)
    # Scanning the folders is cheap and names a wrong one before the MLPerf init.
    train_batches, val_batches, n_train, n_val, classes, verdict, files = \
        _loaders(cfg, data_dir, seed)
    datasets.require_mlperf(verdict, BENCHMARK, mode, division)

    # -- init: untimed ------------------------------------------------------------------------
    log_cache_clear(log, files)
    log.start(C.INIT_START)
    log.submission(BENCHMARK, mode, platform, division)
    log.event(C.SEED, seed)
    model = ResNet(cfg.arch, classes, cfg.base_width).to(device)
    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    _log_hyperparameters(log, cfg, model, n_train, n_val)
    say(f"resnet {mode} ({division} division): {model.describe()}, {classes} classes, "
        f"{n_train:,} training / {n_val:,} validation images ({verdict.label}), "
        f"{steps_per_epoch:,} steps of {cfg.batch_size} per epoch; target {target.metric} "
        f">= {target.value}; {threads} thread(s) on {device}")
    if mode == "full" and not verdict.is_mlperf:
        say("note: the MLPerf target is defined on ImageNet; this run is not comparable")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = run.start()
    step_count = [0]

    def step(batch) -> torch.Tensor:
        images, labels = batch
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step_count[0], cfg, steps_per_epoch)
        images = images.to(device, non_blocking=True)
        if device == "cpu":
            images = images.contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(images), labels.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step_count[0] += 1
        return loss.detach()

    bounds = Bounds(cfg.max_epochs, cfg.max_steps, cfg.max_seconds, cfg.epochs_per_eval)
    out = train_epochs(log, bounds, target, batches=train_batches, step=step,
                       batch_size_of=lambda b: len(b[1]),
                       evaluate=lambda: top1(model, val_batches(), device),
                       steps_per_epoch=steps_per_epoch, metric=target.metric)
    run_stop_ms = run.stop(C.SUCCESS if out.success else C.ABORTED)
    if cfg.save_checkpoint:
        save_checkpoint(model, Path(out_dir) / CHECKPOINT)

    # -- report -------------------------------------------------------------------------------
    epoch_time_s = out.epoch_time_s(steps_per_epoch)
    basis = (f"{cfg.epochs_to_converge:g} epochs (the v0.5 reference's schedule, "
             "imagenet_main.py train_epochs=90: an upper bound, no convergence epoch is "
             "published) x measured training epoch time; evaluation time excluded")
    if cfg.arch != "resnet50":
        basis += f"; the epoch count is for ResNet-50 on ImageNet, this run: {model.describe()}"
    return finish_run(
        out_dir, benchmark=BENCHMARK, mode=mode, division=division, target=target,
        quality=out.quality,
        success=out.success, epochs=out.epochs, samples=out.samples,
        timed_window_s=(run_stop_ms - run_start_ms) / 1000.0, throughput=out.throughput(),
        epoch_time_s=epoch_time_s,
        projection=projection_for(mode, verdict, cfg.epochs_to_converge,
                                  ResnetConfig.epochs_to_converge, epoch_time_s, basis),
        stop_reason=out.stop_reason, dataset=verdict.label, cfg=cfg, seed=seed,
        platform=platform)


CHECKPOINT = "checkpoint.pt"


def save_checkpoint(model: ResNet, path: Path) -> str:
    """The model's weights as a plain state dict (CPU tensors, contiguous), written atomically;
    returns its sha256, which a Mask R-CNN run that loads it records."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    digest = hashlib.sha256(data).hexdigest()
    say(f"checkpoint: {path} ({len(data) / 1e6:.1f} MB, sha256 {digest}); a Mask R-CNN run "
        f"starts from it with --set backbone_checkpoint=PATH")
    return digest


def _log_hyperparameters(log: MLLog, cfg: ResnetConfig, model: ResNet, n_train: int,
                         n_val: int) -> None:
    # The keys the MLPerf 0.6.0 resnet.yaml rules require, and the reference's others.
    log.event(EdgeKeys.MODEL_NAME, model.describe())
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
    log.event(C.OPT_NAME, C.SGD)
    log.event(C.OPT_BASE_LR, cfg.base_learning_rate * cfg.batch_size / 256)
    log.event(C.OPT_LR_WARMUP_EPOCHS, cfg.warmup_epochs)
    log.event(C.OPT_LR_DECAY_BOUNDARY_EPOCHS, list(cfg.decay_boundary_epochs))
    log.event(C.OPT_WEIGHT_DECAY, cfg.weight_decay)
    log.event(EdgeKeys.SGD_MOMENTUM, cfg.momentum)
    log.event(EdgeKeys.LABEL_SMOOTHING, cfg.label_smoothing)
    log.event(C.MODEL_BN_SPAN, cfg.batch_size)     # one process: BN statistics span the batch
    log.event(C.TRAIN_SAMPLES, n_train)
    log.event(C.EVAL_SAMPLES, n_val)
