"""Train the sentiment seq-CNN until test accuracy reaches the target, as the MLPerf reference
does: Adam, one pass over the shuffled training reviews per epoch, the whole test set evaluated
after every epoch, stop at the first evaluation that meets the target. The run (data, timed
window, evaluation, MLLOG, result.json) is references/sentiment/loop.py's; this file is the
PyTorch model, optimizer and step it drives. The LiteRT interpreter drives the same run on
phones (references/litert/sentiment.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn as nn

from references.common import distributed
from references.common.group_step import GlobalBatchStep, record_first
from references.common.harness import TimedRun, run_reference
from references.common.mllogging import MLLog
from references.sentiment import data as sdata
from references.sentiment import loop
from references.sentiment.config import SentimentConfig
from references.sentiment.model import SeqCNN

BENCHMARK = loop.BENCHMARK


@torch.inference_mode()
def accuracy(model: nn.Module, reviews: sdata.Reviews, cfg: SentimentConfig,
             device: str) -> float:
    """Fraction of test reviews classified right (the reference's average accuracy)."""
    model.eval()
    right = 0
    for tokens, lengths, labels in sdata.batches(reviews, cfg.batch_size, None, device):
        right += (model(tokens, lengths).argmax(1) == labels).sum().item()
    model.train()
    return right / len(reviews)


class TorchBackend:
    """The seq-CNN in PyTorch on ``device``: the reference's model, Adam and cross entropy.

    In a group (references.common.distributed) every rank draws the same global batches (the
    same seed) and trains its slice of each, the gradients averaged over the nodes: the step
    one node takes on the global batch (references.common.group_step)."""

    def __init__(self, model: nn.Module, cfg: SentimentConfig, device: str,
                 threads: int, group: distributed.Group = distributed.SINGLE) -> None:
        self.model, self.cfg, self.device, self.group = model.to(device), cfg, device, group
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate,
                                          betas=(cfg.adam_beta1, cfg.adam_beta2),
                                          eps=cfg.adam_epsilon)
        self.loss_fn = nn.CrossEntropyLoss()
        self.description = f"{threads} thread(s) on {device}"
        self.first_losses: list[float] = []
        self.group_step = None
        if group.distributed:
            self.description += f", rank {group.rank} of {group.world_size} nodes"
            self.group_step = GlobalBatchStep(self.model, self.optimizer,
                                              nn.CrossEntropyLoss(reduction="sum"), group)
            self.first_losses = self.group_step.first_losses

    def batches(self, reviews: sdata.Reviews, rng: np.random.Generator):
        return sdata.batches(reviews, self.cfg.batch_size, rng, self.device)

    def train_step(self, batch) -> torch.Tensor:
        tokens, lengths, labels = batch
        if self.group_step is not None:
            part = self.group.slice_of(len(labels))    # this node's slice of the global batch
            return self.group_step((tokens[part], lengths[part]), labels[part], len(labels))
        loss = self.loss_fn(self.model(tokens, lengths), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        record_first(self.first_losses, loss)
        return loss.detach()

    def accuracy(self, reviews: sdata.Reviews) -> float:
        return accuracy(self.model, reviews, self.cfg, self.device)


def main(cfg: SentimentConfig, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None,
         group: distributed.Group = distributed.SINGLE) -> int:
    """Run sentiment in ``mode``; write OUT/mllog.txt and OUT/result.json; return the exit code.
    ``group``: this node's place in a run several nodes train together."""
    return run_reference(_train, sdata.check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division, group=group)


def _train(cfg: SentimentConfig, mode: str, division: str, data_dir: Path | None,
           out_dir: Path, seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    def make_backend(data: sdata.SentimentData) -> TorchBackend:
        torch.manual_seed(seed)                    # model initialisation
        # One embedding row more than the vocabulary: id 0 is padding (sentiment/data.py).
        model = SeqCNN(len(data.vocab) + 1, cfg.embedding_dim, cfg.filters, cfg.filter_sizes)
        return TorchBackend(model, cfg, device, threads, distributed.current())

    return loop.run(cfg, mode, division, data_dir, out_dir, seed, platform, log, run,
                    make_backend)
