"""ResNet in PyTorch: the model and its SGD for references/resnet/loop.py, which runs the v0.5
reference's training (schedule, evaluation, timed window, MLLOG) whatever executes the model.

Synthetic data is fed from the loop's numpy arrays; ImageNet folders through a DataLoader whose
worker processes decode and augment (rdata.ImageDataset, the reference's transforms).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn as nn

from references.common import distributed
from references.common.errors import one_line_from_workers
from references.common.group_step import GlobalBatchStep, record_first
from references.common.runtime import available_cpus
from references.common.harness import TimedRun, run_reference, say
from references.common.mllogging import MLLog
from references.resnet import data as rdata
from references.resnet import loop
from references.resnet.config import ResnetConfig
from references.resnet.loop import BENCHMARK, lr_at  # noqa: F401  (lr_at: the schedule)
from references.resnet.model import ResNet


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
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None,
         group: distributed.Group = distributed.SINGLE) -> int:
    """Run ResNet in ``mode``; write OUT/mllog.txt and OUT/result.json; return the exit code.
    ``group``: this node's place in a run several nodes train together."""
    return run_reference(_train, rdata.check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division, group=group)


class TorchBackend:
    """ResNet and its SGD in PyTorch (loop.Backend).

    In a group (references.common.distributed) every rank trains its slice of each global
    batch: the synthetic batches are drawn alike on every rank and sliced; the ImageNet
    folders are split between the ranks by a DistributedSampler, each loading its own part of
    the global batch. The loss is the slice's sum x world / global batch, so the gradients
    DistributedDataParallel averages are the global batch's mean. Batch norm's statistics span
    each node's slice (logged as model_bn_span), as in MLPerf's multi-node ResNet runs."""

    def __init__(self, cfg: ResnetConfig, data: loop.Data, device: str, threads: int,
                 seed: int, group: distributed.Group = distributed.SINGLE) -> None:
        self.cfg, self.device, self.group = cfg, device, group
        self.model = ResNet(cfg.arch, data.classes, cfg.base_width).to(device)
        if device == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, cfg)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.model_name = self.model.describe()
        self.description = f"{threads} thread(s) on {device}"
        self.rng = np.random.default_rng(seed)
        self.loaders = None if data.train_set is None else _loaders(cfg, data, seed, group)
        self.first_losses: list[float] = []
        self.group_step = None
        if group.distributed:
            self.description += f", rank {group.rank} of {group.world_size} nodes"
            self.group_step = GlobalBatchStep(
                self.model, self.optimizer,
                nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="sum"), group)
            self.first_losses = self.group_step.first_losses

    def samples_in(self, batch) -> int:
        """The global batch's samples a step trained (every node's slice of it)."""
        n = len(batch[1])
        return n if self.loaders is None else n * self.group.world_size

    def train_batches(self, data: loop.Data, epoch: int):
        if self.loaders is None:
            order = self.rng.permutation(data.n_train)
            return ((torch.from_numpy(x), torch.from_numpy(y))
                    for x, y in data.synthetic_batches(self.cfg.batch_size, order))
        data.train_set.epoch = epoch           # a fresh augmentation stream per epoch
        if self.group.distributed:
            self.loaders[0].sampler.set_epoch(epoch)
        return (b for b in one_line_from_workers(self.loaders[0]) if b is not None)

    def train_step(self, batch, lr: float) -> torch.Tensor:
        images, labels = batch
        n = self.samples_in(batch)             # the global batch
        if self.loaders is None and self.group_step is not None:
            part = self.group.slice_of(n)       # this node's slice of the global batch
            images, labels = images[part], labels[part]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images = images.to(self.device, non_blocking=True)
        if self.device == "cpu":
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(self.device, non_blocking=True)
        if self.group_step is not None:
            return self.group_step((images,), labels, n)
        loss = self.loss_fn(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        record_first(self.first_losses, loss)
        return loss.detach()

    def top1(self, data: loop.Data) -> float:
        if self.loaders is None:
            batches = ((torch.from_numpy(x), torch.from_numpy(y)) for x, y in
                       data.synthetic_batches(loop.EVAL_BATCH, None, train=False))
        else:
            batches = one_line_from_workers(self.loaders[1])
        return top1(self.model, batches, self.device)

    def after_run(self, out_dir: Path) -> None:
        if self.cfg.save_checkpoint and self.group.lead:
            save_checkpoint(self.model, out_dir / CHECKPOINT)


def _loaders(cfg: ResnetConfig, data: loop.Data, seed: int,
             group: distributed.Group = distributed.SINGLE):
    """(train, val) DataLoaders over the folders' datasets, decoding in worker processes. In a
    group each rank loads its share of the training images (a DistributedSampler, reshuffled
    per epoch from the seed), batch_size / world_size at a time; rank 0 alone evaluates."""
    workers = cfg.workers if cfg.workers >= 0 else max(0, min(8, available_cpus() - 1))
    gen = torch.Generator().manual_seed(seed)
    common = dict(collate_fn=rdata.collate, num_workers=workers,
                  persistent_workers=False, pin_memory=False)
    if group.distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(
            data.train_set, num_replicas=group.world_size, rank=group.rank, shuffle=True,
            seed=seed)
        train = torch.utils.data.DataLoader(
            data.train_set, batch_size=max(1, cfg.batch_size // group.world_size),
            sampler=sampler, **common)
    else:
        train = torch.utils.data.DataLoader(data.train_set, batch_size=cfg.batch_size,
                                            shuffle=True, generator=gen, **common)
    val = torch.utils.data.DataLoader(data.val_set, batch_size=cfg.batch_size, **common)
    return train, val


def _train(cfg: ResnetConfig, mode: str, division: str, data_dir: Path | None, out_dir: Path,
           seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    torch.manual_seed(seed)
    return loop.run(cfg, mode, division, data_dir, out_dir, seed, platform, log, run,
                    lambda data: TorchBackend(cfg, data, device, threads, seed,
                                              distributed.current()))


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
