"""NCF's run, whatever executes the model: PyTorch (references/ncf/train.py) or the LiteRT
interpreter on a phone (references/litert/ncf.py). Both hand ``run`` a :class:`Backend` -- a
train step on one batch, scores for (user, item) pairs -- and get the same MLPerf run around it:
the same data, timed window, evaluation, MLLOG events and result.json.

The timed window starts where the v0.5 reference starts its clock: before drawing the fixed
evaluation negatives (convert.py logs run_start there; run_and_time.sh then runs ncf.py, which
loads the data and evaluates the untrained model before its first epoch). So inside the window:
the 999 evaluation negatives per user, one evaluation of the untrained model (logged as
mlperf_edge_initial_eval_accuracy, not as an epoch's eval_accuracy), then the epochs with their
negative sampling; evaluation after every epoch, stop at the first that meets the target or
after ``max_epochs``. Before it (init): reading, identifying, filtering and splitting the
ratings, and building the model. The one difference left: the reference re-reads the files
convert.py wrote; here the prepared arrays stay in memory, so there is no such load to time.

Torch-free: stdout belongs to the MLLOG lines; progress for people goes to stderr.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from mlperf_logging.mllog import constants as C

from references.common import datasets, distributed
from references.common.harness import (
    Stopwatch,
    TimedRun,
    finish_run,
    log_cache_clear,
    projection_for,
    say,
)
from references.common.mllogging import EdgeKeys, MLLog, NcfKeys
from references.common.targets import reached, target_for
from references.ncf import data as ncf_data
from references.ncf.config import NcfConfig
from references.ncf.metrics import hit_rate, ndcg, ranks

BENCHMARK = "ncf"
PROGRESS_EVERY_S = 10.0


class Backend(Protocol):
    """What executes NeuMF for a run."""

    description: str          # for the progress line, e.g. "1 thread(s) on cpu"

    def batches(self, split: ncf_data.Split, rng: np.random.Generator) -> Iterator[tuple]:
        """One epoch's (users, items, labels) batches in the backend's own arrays."""

    def train_step(self, users, items, labels) -> Any:
        """One optimizer step; the batch's mean loss (a float or a tensor: summed, then
        float() once per report, so a device need not sync every step)."""

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Logits for the (user, item) pairs, as a numpy array."""


def evaluate(backend: Backend, data: ncf_data.NcfData, topk: int) -> tuple[float, float]:
    """(HR@topk, NDCG@topk) over every user: the held-out item ranked against the user's
    sampled negatives (reference: val_epoch over all test users). Ranked by logits: the order
    of the reference's sigmoid scores, without the ties float32 sigmoids saturate into."""
    split, pad = data.split, data.split.n_items
    per_chunk = max(1, 65536 // (data.eval_items.shape[1] + 1))   # ~64k scores per call
    all_ranks = []
    for lo in range(0, split.n_users, per_chunk):
        hi = min(lo + per_chunk, split.n_users)
        negatives = data.eval_items[lo:hi].astype(np.int64)
        valid = negatives != pad
        items = np.concatenate((split.test_items[lo:hi, None].astype(np.int64),
                                np.where(valid, negatives, 0)), axis=1)
        users = np.broadcast_to(np.arange(lo, hi)[:, None], items.shape)
        scores = np.asarray(backend.scores(users.reshape(-1), items.reshape(-1)))
        scores = scores.reshape(hi - lo, -1)
        all_ranks.append(ranks(scores[:, 0], scores[:, 1:], valid))
    rank = np.concatenate(all_ranks)
    return hit_rate(rank, topk), ndcg(rank, topk)


def run(cfg: NcfConfig, mode: str, division: str, data_dir: Path | None, out_dir: Path,
        seed: int, platform: str, log: MLLog, timed: TimedRun,
        make_backend: Callable[[ncf_data.Split], Backend]) -> int:
    """One NCF run; ``make_backend(split)`` builds the model and its optimizer, seeded (in
    init, untimed)."""
    target = target_for(BENCHMARK, mode)
    group = distributed.current()          # several nodes: rank 0 evaluates for the group
    # -- init: untimed ------------------------------------------------------------------------
    log_cache_clear(log, None if data_dir is None else ncf_data.dataset_files(cfg, data_dir))
    log.start(C.INIT_START)
    log.submission(BENCHMARK, mode, platform, division)
    log.event(C.SEED, seed)
    rng = np.random.default_rng(seed)              # training negatives and order

    started = time.monotonic()
    data = ncf_data.prepare(cfg, data_dir, say, check=lambda verdict: datasets.require_mlperf(
        verdict, BENCHMARK, mode, division))
    split = data.split
    if not data.verdict.is_mlperf and mode != "smoke":
        say(f"note: {data.verdict.label}; its time is not comparable to MLPerf's")
    backend = make_backend(split)
    samples_per_epoch = ncf_data.samples_per_epoch(split, cfg.negatives_per_positive)
    steps_per_epoch = math.ceil(samples_per_epoch / cfg.batch_size)
    log_hyperparameters(log, cfg, split.n_users, samples_per_epoch, group.world_size)
    say(f"ncf {mode}: {data.dataset}, {split.n_users:,} users x {split.n_items:,} items, "
        f"{len(split.train_keys):,} training positives -> {samples_per_epoch:,} samples/epoch "
        f"({steps_per_epoch:,} steps of {cfg.batch_size}); target {target.metric} "
        f">= {target.value}; {backend.description}; "
        f"prepared in {time.monotonic() - started:.1f} s")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = timed.start()
    run_started = time.monotonic()
    # As the v0.5 reference: the clock runs while the evaluation negatives are drawn and while
    # the untrained model is evaluated once (its "Initial HR@10").
    log.event(NcfKeys.INPUT_STEP_EVAL_NEG_GEN)
    if group.lead:
        data = ncf_data.draw_eval_items(data, cfg)
    initial, _ = group.from_lead(lambda: evaluate(backend, data, cfg.topk))
    log.event(EdgeKeys.INITIAL_EVAL, initial, metadata={C.EPOCH_NUM: 0})
    say(f"initial HR@{cfg.topk} {initial:.4f} (untrained; evaluation set drawn and scored in "
        f"{time.monotonic() - run_started:.2f} s, inside the timed window as in v0.5)")
    steps = samples = epochs_done = 0
    train_s = 0.0                                  # training wall time, evaluation excluded
    batching = Stopwatch()                        # ... of which building batches (negatives)
    first_step_s, first_batch = 0.0, 0             # the first step allocates grads and state
    epoch_times_s: list[float] = []
    quality: float | None = None
    stop_reason = "max_epochs"

    def bound_reached() -> str | None:
        if cfg.max_steps is not None and steps >= cfg.max_steps:
            return "max_steps"             # the same step on every node
        if cfg.max_seconds is not None and group.any_true(
                time.monotonic() - run_started >= cfg.max_seconds):
            return "max_seconds"           # agreed: one node's clock stops them all
        return None

    for epoch in range(1, cfg.max_epochs + 1):
        if bound := bound_reached():
            stop_reason = bound
            break
        log.start(C.BLOCK_START, metadata={C.FIRST_EPOCH_NUM: epoch, C.EPOCH_COUNT: 1})
        log.start(C.EPOCH_START, metadata={C.EPOCH_NUM: epoch})
        epoch_started = last_report = time.monotonic()
        loss_sum, epoch_steps, epoch_samples = 0.0, 0, 0
        for users, items, labels in batching.timed(backend.batches(split, rng)):
            if bound := bound_reached():
                break
            step_started = time.monotonic()
            loss_sum += backend.train_step(users, items, labels)
            if steps == 0:
                first_step_s, first_batch = time.monotonic() - step_started, len(labels)
            steps, epoch_steps = steps + 1, epoch_steps + 1
            epoch_samples += len(labels)
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                rate = epoch_samples / (last_report - epoch_started)
                say(f"epoch {epoch} step {epoch_steps:,}/{steps_per_epoch:,}: loss "
                    f"{float(loss_sum) / epoch_steps:.4f}, {rate:,.0f} samples/s")
        epoch_s = time.monotonic() - epoch_started
        train_s, samples = train_s + epoch_s, samples + epoch_samples
        log.end(C.EPOCH_STOP, metadata={C.EPOCH_NUM: epoch})
        if bound:                                  # stopped inside the epoch: no evaluation
            log.end(C.BLOCK_STOP, metadata={C.FIRST_EPOCH_NUM: epoch})
            stop_reason = bound
            say(f"epoch {epoch}: stopped by {bound} after {epoch_steps:,} steps")
            break
        epochs_done = epoch
        epoch_times_s.append(epoch_s)

        # Per the MLPerf reference: evaluate after every epoch.
        log.start(C.EVAL_START, metadata={C.EPOCH_NUM: epoch})
        eval_started = time.monotonic()
        quality, ndcg_value = group.from_lead(lambda: evaluate(backend, data, cfg.topk))
        log.end(C.EVAL_STOP, metadata={C.EPOCH_NUM: epoch})
        log.event(C.EVAL_ACCURACY, quality, metadata={C.EPOCH_NUM: epoch})
        log.end(C.BLOCK_STOP, metadata={C.FIRST_EPOCH_NUM: epoch})
        say(f"epoch {epoch}: loss {float(loss_sum) / max(1, epoch_steps):.4f}, "
            f"HR@{cfg.topk} {quality:.4f}, NDCG@{cfg.topk} {ndcg_value:.4f}; train {epoch_s:.2f} s "
            f"({epoch_samples / epoch_s:,.0f} samples/s this epoch, data loading included), "
            f"eval {time.monotonic() - eval_started:.2f} s")
        if reached(target, quality):
            stop_reason = "target_reached"
            break

    success = reached(target, quality)
    run_stop_ms = timed.stop(C.SUCCESS if success else C.ABORTED)

    # -- report -------------------------------------------------------------------------------
    timed_window_s = (run_stop_ms - run_start_ms) / 1000.0
    # Training-step time proper: without building batches, and without the first step (it
    # allocates gradients and optimizer state), which would otherwise weigh on a short run.
    step_s, timed_steps = train_s - batching.total_s, steps
    # The one throughput (agent.display.THROUGHPUT_DEFINITION): data loading in, first step out.
    thr_s, thr_samples = train_s, samples
    if steps > 1:
        step_s, timed_steps = step_s - first_step_s, steps - 1
        thr_s, thr_samples = train_s - first_step_s, samples - first_batch
    if epoch_times_s:
        epoch_time_s = sum(epoch_times_s) / len(epoch_times_s)
    elif steps:
        # No whole epoch ran: a whole epoch's steps at the measured step time, plus its shards
        # of negatives at the measured time per shard. (Total time / steps would charge the
        # first shard, built before step 1, to every step of a short run.)
        shard = ncf_data.positives_per_shard(cfg.batch_size)
        shards_per_epoch = math.ceil(len(split.train_keys) / shard)
        shards_built = math.ceil(samples / (shard * (1 + cfg.negatives_per_positive)))
        epoch_time_s = (steps_per_epoch * step_s / timed_steps
                        + shards_per_epoch * batching.total_s / shards_built)
    else:
        epoch_time_s = None
    return finish_run(
        out_dir, benchmark=BENCHMARK, mode=mode, division=division, target=target, quality=quality,
        success=success, epochs=epochs_done, samples=samples, timed_window_s=timed_window_s,
        throughput=thr_samples / thr_s if thr_s > 0 and thr_samples > 0 else None,
        epoch_time_s=epoch_time_s,
        projection=_projection(cfg, mode, data.verdict, epoch_time_s), stop_reason=stop_reason,
        dataset=data.verdict.label, cfg=cfg, seed=seed, platform=platform,
        first_losses=getattr(backend, "first_losses", None))


def _projection(cfg: NcfConfig, mode: str, verdict,
                epoch_time_s: float | None) -> dict | None:
    """Time-to-train projected from a bounded run. Labelled as such: never a result."""
    basis = (f"{cfg.epochs_to_converge:g} epochs x measured training epoch time; MLPerf v0.5 "
             "expectation 'NCF converges in about 8 to 14 epochs' "
             "(github.com/mlcommons/training_policies/issues/77); evaluation time excluded")
    return projection_for(mode, verdict, cfg.epochs_to_converge, NcfConfig.epochs_to_converge,
                          epoch_time_s, basis)


def log_hyperparameters(log: MLLog, cfg: NcfConfig, n_users: int,
                        samples_per_epoch: int, nodes: int = 1) -> None:
    # The global batch, whatever the nodes: each trains its slice of it, and Adam's learning
    # rate is the reference's for that batch (no scaling: one node or N take the same step).
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
    log.event(EdgeKeys.NODES, nodes)
    log.event(C.OPT_NAME, C.ADAM)
    log.event(C.OPT_BASE_LR, cfg.learning_rate)
    log.event(C.OPT_ADAM_BETA_1, cfg.adam_beta1)
    log.event(C.OPT_ADAM_BETA_2, cfg.adam_beta2)
    log.event(C.OPT_ADAM_EPSILON, cfg.adam_epsilon)
    log.event(C.TRAIN_SAMPLES, samples_per_epoch)
    log.event(C.EVAL_SAMPLES, n_users * (1 + cfg.eval_negatives))
    # The NCF keys the v0.5 reference logged (convert.py, dataset.py, neumf.py, ncf.py).
    log.event(NcfKeys.PREPROC_HP_MIN_RATINGS, cfg.min_ratings)
    log.event(NcfKeys.PREPROC_HP_NUM_EVAL, cfg.eval_negatives)
    log.event(NcfKeys.PREPROC_HP_SAMPLE_EVAL_REPLACEMENT, True)
    log.event(NcfKeys.INPUT_HP_NUM_NEG, cfg.negatives_per_positive)
    log.event(NcfKeys.INPUT_HP_SAMPLE_TRAIN_REPLACEMENT, True)
    log.event(NcfKeys.MODEL_HP_MF_DIM, cfg.factors)
    log.event(NcfKeys.MODEL_HP_MLP_LAYER_SIZES, list(cfg.mlp_layers))
    log.event(NcfKeys.MODEL_HP_LOSS_FN, "binary_cross_entropy")
    log.event(NcfKeys.EVAL_HP_NUM_USERS, n_users)
    log.event(NcfKeys.EVAL_HP_NUM_NEG, cfg.eval_negatives)
