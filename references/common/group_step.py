"""The optimizer step of a node in a group run (references.common.distributed): its slice of
the global batch forward and backward, the gradients averaged over the nodes by
DistributedDataParallel, so the step is the one a single node takes on the whole global batch.

Imports torch: only the references' torch backends use it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from references.common.distributed import Group

#: Steps whose global-batch loss result.json records (a check of a group run against one node).
FIRST_LOSSES = 16


class GlobalBatchStep:
    """``step(inputs, labels, n)``: train on this node's slice (``inputs``, ``labels``) of a
    global batch of ``n`` samples. The loss is the slice's sum x world / n: DDP averages the
    gradients over the world, which makes them the global batch's mean. Returns the slice's
    mean loss (detached, no sync); keeps the global mean of the first FIRST_LOSSES steps."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 sum_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 group: Group) -> None:
        self.trained = group.wrap(model)
        self.optimizer, self.sum_loss, self.group = optimizer, sum_loss, group
        self.first_losses: list[float] = []

    def __call__(self, inputs: tuple, labels: torch.Tensor, n: int) -> torch.Tensor:
        total = self.sum_loss(self.trained(*inputs), labels)
        self.optimizer.zero_grad(set_to_none=True)
        (total * (self.group.world_size / n)).backward()
        self.optimizer.step()
        if len(self.first_losses) < FIRST_LOSSES:
            self.first_losses.append(self.group.mean_of(float(total.detach()), n))
        return total.detach() / max(1, len(labels))


def record_first(losses: list[float], loss: torch.Tensor) -> None:
    """A single node's loss of one of its first steps (one host sync each, FIRST_LOSSES in
    all)."""
    if len(losses) < FIRST_LOSSES:
        losses.append(float(loss.detach()))
