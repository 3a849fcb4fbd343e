"""Train NCF with PyTorch until HR@10 reaches the target, as the MLPerf v0.5 reference does: the
run (data, timed window, evaluation, MLLOG, result.json) is references/ncf/loop.py's; this file
is the PyTorch model, optimizer and step it drives. The LiteRT interpreter drives the same run
on phones (references/litert/ncf.py).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TextIO

import numpy as np
import torch
import torch.nn as nn

from references.common import distributed
from references.common.group_step import GlobalBatchStep, record_first
from references.common.harness import TimedRun, run_reference
from references.common.mllogging import MLLog
from references.ncf import data as ncf_data
from references.ncf import loop
from references.ncf.config import NcfConfig
from references.ncf.model import NeuMF

BENCHMARK = loop.BENCHMARK


def make_optimizer(model: nn.Module, cfg: NcfConfig) -> torch.optim.Optimizer:
    """Adam with the reference's settings. fused=True runs it as one kernel over all parameters:
    the same update, but on ml-20m's 32M embedding parameters (all updated every step: dense Adam,
    as the reference) it took the step from 320 ms to 108 ms here (2 cores)."""
    kwargs = dict(lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                  eps=cfg.adam_epsilon)
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError):     # a device or build without fused Adam
        return torch.optim.Adam(model.parameters(), **kwargs)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
               users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One optimizer step on one batch; returns the batch's mean loss (detached, no sync)."""
    loss = loss_fn(model(users, items), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


class TorchBackend:
    """NeuMF in PyTorch on ``device``: the reference's model, Adam and BCE-with-logits loss.

    In a group (references.common.distributed) every rank draws the same global batches and
    trains on its slice: the loss is the slice's sum x world / global batch, so the gradients
    DistributedDataParallel averages are the global batch's mean -- the step one node takes."""

    def __init__(self, model: nn.Module, cfg: NcfConfig, device: str, threads: int,
                 group: distributed.Group = distributed.SINGLE) -> None:
        self.model, self.cfg, self.device, self.group = model.to(device), cfg, device, group
        self.optimizer = make_optimizer(self.model, cfg)
        self.loss_fn = nn.BCEWithLogitsLoss()          # reference: MODEL_HP_LOSS_FN = BCE
        self.description = f"{threads} thread(s) on {device}"
        self.first_losses: list[float] = []
        self.group_step = None
        if group.distributed:
            self.description += f", rank {group.rank} of {group.world_size} nodes"
            self.group_step = GlobalBatchStep(self.model, self.optimizer,
                                              nn.BCEWithLogitsLoss(reduction="sum"), group)
            self.first_losses = self.group_step.first_losses

    def batches(self, split: ncf_data.Split, rng: np.random.Generator):
        return ncf_data.epoch_batches(split, self.cfg.negatives_per_positive,
                                      self.cfg.batch_size, rng, self.device)

    def train_step(self, users, items, labels) -> torch.Tensor:
        if self.group_step is None:
            loss = train_step(self.model, self.optimizer, self.loss_fn, users, items, labels)
            record_first(self.first_losses, loss)
            return loss
        part = self.group.slice_of(len(labels))        # this node's slice of the global batch
        return self.group_step((users[part], items[part]), labels[part], len(labels))

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return scores(self.model, self.device, users, items)


@torch.inference_mode()
def scores(model: nn.Module, device: str, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The model's logits for the pairs, in eval mode, as numpy."""
    model.eval()
    try:
        return model(torch.from_numpy(users).to(device),
                     torch.from_numpy(items).to(device)).float().cpu().numpy()
    finally:
        model.train()


def evaluate(model: nn.Module, data: ncf_data.NcfData, topk: int,
             device: str) -> tuple[float, float]:
    """(HR@topk, NDCG@topk) of ``model`` (see loop.evaluate)."""
    scorer = SimpleNamespace(scores=lambda users, items: scores(model, device, users, items))
    return loop.evaluate(scorer, data, topk)


def main(cfg: NcfConfig, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None,
         group: distributed.Group = distributed.SINGLE) -> int:
    """Run NCF in ``mode``; write OUT/mllog.txt and OUT/result.json; return the exit code.
    ``group``: this node's place in a run several nodes train together."""
    return run_reference(_train, ncf_data.check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division, group=group)


def _train(cfg: NcfConfig, mode: str, division: str, data_dir: Path | None, out_dir: Path,
           seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    def make_backend(split: ncf_data.Split) -> TorchBackend:
        torch.manual_seed(seed)                    # model initialisation
        model = NeuMF(split.n_users, split.n_items, cfg.factors, cfg.mlp_layers)
        return TorchBackend(model, cfg, device, threads, distributed.current())

    return loop.run(cfg, mode, division, data_dir, out_dir, seed, platform, log, run,
                    make_backend)
