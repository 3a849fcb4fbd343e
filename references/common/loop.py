"""The epoch loop ResNet and sentiment share: train for epochs in blocks, evaluate at the end of
each block, stop at the target or at a bound, and log it all with MLPerf keys.

The structure follows the MLPerf compliance rules (0.6.0 common.yaml): ``block_start`` (first
epoch, epoch count) -> ``epoch_start``/``epoch_stop`` for each epoch of the block -> ``eval_start``
/ ``eval_stop`` / ``eval_accuracy`` -> ``block_stop``. Per step the loop does no more than the
bare minimum (a bound check and a loss accumulated on the device, never a host sync), so the
harness costs nothing measurable (benchmarks/reference_overhead.py). Torch-free: a step's loss
is whatever it returns (a device tensor, summed and read once per report, or a float), so the
LiteRT interpreter's runs use it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mlperf_logging.mllog import constants as C

from references.common.harness import say
from references.common.mllogging import MLLog
from references.common.targets import Target, reached

PROGRESS_EVERY_S = 10.0


@dataclass
class Bounds:
    max_epochs: int
    max_steps: int | None = None
    max_seconds: float | None = None
    epochs_per_eval: int = 1              # the reference's evaluation cadence


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` returns when the logged ``eval_accuracy`` is not the one number the
    target is checked on: Mask R-CNN logs {"BBOX": .., "SEGM": ..} (the MLPerf maskrcnn rules'
    format) and is checked on both at once (targets.joint_quality)."""

    quality: float
    logged: Any


@dataclass
class LoopResult:
    quality: float | None = None
    epochs: int = 0                       # whole epochs trained
    steps: int = 0
    samples: int = 0
    train_s: float = 0.0                  # training wall time (data loading in, eval out)
    first_step_s: float = 0.0             # the first step allocates grads and optimizer state
    first_batch: int = 0
    epoch_times_s: list[float] = field(default_factory=list)
    stop_reason: str = "max_epochs"

    @property
    def success(self) -> bool:
        return self.stop_reason == "target_reached"

    def throughput(self) -> float | None:
        """Samples per second of training, the first step excluded when there are others."""
        seconds, samples = self.train_s, self.samples
        if self.steps > 1:
            seconds, samples = seconds - self.first_step_s, samples - self.first_batch
        return samples / seconds if seconds > 0 and samples > 0 else None

    def epoch_time_s(self, steps_per_epoch: int) -> float | None:
        """The mean measured epoch; before a whole epoch ran, an epoch's steps at the measured
        time per step (first step excluded)."""
        if self.epoch_times_s:
            return sum(self.epoch_times_s) / len(self.epoch_times_s)
        if self.steps > 1:
            return steps_per_epoch * (self.train_s - self.first_step_s) / (self.steps - 1)
        if self.steps == 1:
            return steps_per_epoch * self.train_s
        return None


def train_epochs(log: MLLog, bounds: Bounds, target: Target, *,
                 batches: Callable[[int], Iterable], step: Callable[[object], Any],
                 batch_size_of: Callable[[object], int],
                 evaluate: Callable[[], float | Evaluation], steps_per_epoch: int,
                 metric: str, agree: Callable[[bool], bool] = lambda flag: flag) -> LoopResult:
    """Run the timed part of training. ``batches(epoch)`` yields the epoch's batches, ``step``
    trains on one and returns its loss (on the device, not synced), ``evaluate`` returns the
    quality on the evaluation set (or an Evaluation: the quality and what to log). ``agree``:
    in a group of nodes, true on every node when one node's clock reached ``max_seconds``."""
    out = LoopResult()
    started = time.monotonic()

    def bound_reached() -> str | None:
        if bounds.max_steps is not None and out.steps >= bounds.max_steps:
            return "max_steps"
        if bounds.max_seconds is not None and agree(
                time.monotonic() - started >= bounds.max_seconds):
            return "max_seconds"
        return None

    epoch, bound = 0, None
    while epoch < bounds.max_epochs and bound is None:
        first = epoch + 1
        count = min(bounds.epochs_per_eval, bounds.max_epochs - epoch)
        if bound := bound_reached():
            break
        log.start(C.BLOCK_START, metadata={C.FIRST_EPOCH_NUM: first, C.EPOCH_COUNT: count})
        for epoch in range(first, first + count):
            bound = _one_epoch(log, out, epoch, batches, step, batch_size_of, bound_reached,
                               steps_per_epoch)
            if bound:
                break
        if bound:                         # stopped inside the block: no evaluation
            log.end(C.BLOCK_STOP, metadata={C.FIRST_EPOCH_NUM: first})
            break
        # Per the reference's cadence: evaluate after every block of epochs_per_eval epochs.
        log.start(C.EVAL_START, metadata={C.EPOCH_NUM: epoch})
        eval_started = time.monotonic()
        got = evaluate()
        out.quality, logged = ((got.quality, got.logged) if isinstance(got, Evaluation)
                               else (got, got))
        log.end(C.EVAL_STOP, metadata={C.EPOCH_NUM: epoch})
        log.event(C.EVAL_ACCURACY, logged, metadata={C.EPOCH_NUM: epoch})
        log.end(C.BLOCK_STOP, metadata={C.FIRST_EPOCH_NUM: first})
        say(f"epoch {epoch}: {metric} {out.quality:.4f} (target {target.value}); "
            f"eval {time.monotonic() - eval_started:.2f} s")
        if reached(target, out.quality):
            out.stop_reason = "target_reached"
            return out
    if bound:
        out.stop_reason = bound
    return out


def _one_epoch(log: MLLog, out: LoopResult, epoch: int, batches, step, batch_size_of,
               bound_reached, steps_per_epoch: int) -> str | None:
    log.start(C.EPOCH_START, metadata={C.EPOCH_NUM: epoch})
    epoch_started = last_report = time.monotonic()
    loss_sum, epoch_steps, epoch_samples, bound = None, 0, 0, None
    for batch in batches(epoch):
        if bound := bound_reached():
            break
        step_started = time.monotonic()
        loss = step(batch)
        loss_sum = loss if loss_sum is None else loss_sum + loss
        n = batch_size_of(batch)
        if out.steps == 0:
            out.first_step_s, out.first_batch = time.monotonic() - step_started, n
        out.steps, epoch_steps, epoch_samples = out.steps + 1, epoch_steps + 1, epoch_samples + n
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            say(f"epoch {epoch} step {epoch_steps:,}/{steps_per_epoch:,}: loss "
                f"{float(loss_sum) / epoch_steps:.4f}, "
                f"{epoch_samples / (last_report - epoch_started):,.1f} samples/s")
    else:
        bound = None
    epoch_s = time.monotonic() - epoch_started
    out.train_s += epoch_s
    out.samples += epoch_samples
    log.end(C.EPOCH_STOP, metadata={C.EPOCH_NUM: epoch})
    if bound:
        say(f"epoch {epoch}: stopped by {bound} after {epoch_steps:,} steps")
        return bound
    out.epochs = epoch
    out.epoch_times_s.append(epoch_s)
    mean_loss = float("nan") if loss_sum is None else float(loss_sum) / max(1, epoch_steps)
    say(f"epoch {epoch}: loss {mean_loss:.4f}, train {epoch_s:.2f} s "
        f"({epoch_samples / epoch_s:,.1f} samples/s this epoch, data loading included)")
    return None
