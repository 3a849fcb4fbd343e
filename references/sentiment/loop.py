"""Sentiment's run, whatever executes the model: PyTorch (references/sentiment/train.py) or the
LiteRT interpreter on a phone (references/litert/sentiment.py). Both hand ``run`` a
:class:`Backend` -- the epoch's batches, a train step on one batch, the accuracy on a split --
and get the same MLPerf run around it: the same data, timed window, evaluation, MLLOG events
and result.json.

Reading, tokenising and encoding the reviews and building the vocabulary happen before the
timed window (init), and so does building the model; batching (bucketing by length, padding)
is inside it.

Torch-free: stdout belongs to the MLLOG lines; progress for people goes to stderr.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from mlperf_logging.mllog import constants as C

from references.common import datasets, distributed
from references.common.harness import TimedRun, finish_run, log_cache_clear, projection_for, say
from references.common.loop import Bounds, train_epochs
from references.common.mllogging import EdgeKeys, MLLog
from references.common.mllogging import SentimentKeys as Keys
from references.common.targets import target_for
from references.sentiment import data as sdata
from references.sentiment.config import SentimentConfig

BENCHMARK = "sentiment"


class Backend(Protocol):
    """What executes the seq-CNN for a run."""

    description: str          # for the progress line, e.g. "1 thread(s) on cpu"

    def batches(self, reviews: sdata.Reviews, rng: np.random.Generator) -> Iterator[tuple]:
        """One epoch's (tokens, lengths, labels) batches (data.batch_order's, for ``rng``)
        in the backend's own arrays."""

    def train_step(self, batch: tuple) -> Any:
        """One optimizer step; the batch's mean loss (a float or a device tensor)."""

    def accuracy(self, reviews: sdata.Reviews) -> float:
        """Fraction of ``reviews`` classified right."""


def run(cfg: SentimentConfig, mode: str, division: str, data_dir: Path | None, out_dir: Path,
        seed: int, platform: str, log: MLLog, timed: TimedRun,
        make_backend: Callable[[sdata.SentimentData], Backend]) -> int:
    """One sentiment run; ``make_backend(data)`` builds the model and its optimizer, seeded (in
    init, untimed), for the loaded data (its vocabulary sizes the embedding)."""
    target = target_for(BENCHMARK, mode)
    group = distributed.current()          # several nodes: rank 0 evaluates for the group
    splits = None if data_dir is None else {s: sdata.review_files(data_dir, s)
                                            for s in sdata.SPLITS}
    files = None if splits is None else splits["train"] + splits["test"]
    if splits is not None:        # what the folders hold, by their counts: before any MLLOG line
        datasets.require_mlperf(sdata.identify(data_dir, splits), BENCHMARK, mode, division)

    # -- init: untimed ------------------------------------------------------------------------
    log_cache_clear(log, None if files is None else [p for p, _ in files])
    log.start(C.INIT_START)
    log.submission(BENCHMARK, mode, platform, division)
    log.event(C.SEED, seed)
    rng = np.random.default_rng(seed)
    data = sdata.load(cfg, data_dir, seed, say)
    backend = make_backend(data)
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    log_hyperparameters(log, cfg, len(data.vocab), len(data.train), len(data.test),
                        group.world_size)
    say(f"sentiment {mode} ({division} division): seq-CNN, embedding {cfg.embedding_dim}, "
        f"{cfg.filters} filters of widths {list(cfg.filter_sizes)}; {len(data.train):,} training"
        f" / {len(data.test):,} test reviews ({data.verdict.label}), {steps_per_epoch:,} steps of "
        f"{cfg.batch_size} per epoch; target {target.metric} >= {target.value}; "
        f"{backend.description}")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = timed.start()
    bounds = Bounds(cfg.max_epochs, cfg.max_steps, cfg.max_seconds, epochs_per_eval=1)
    out = train_epochs(
        log, bounds, target,
        batches=lambda epoch: backend.batches(data.train, rng),
        step=backend.train_step, batch_size_of=lambda b: len(b[2]),
        evaluate=lambda: group.from_lead(lambda: backend.accuracy(data.test)),
        steps_per_epoch=steps_per_epoch, metric=target.metric, agree=group.any_true)
    run_stop_ms = timed.stop(C.SUCCESS if out.success else C.ABORTED)

    # -- report -------------------------------------------------------------------------------
    epoch_time_s = out.epoch_time_s(steps_per_epoch)
    basis = (f"{cfg.epochs_to_converge:g} epochs: an ASSUMPTION of mlperf-edge, not an MLPerf "
             "figure (the reference publishes no convergence epoch count; it stops above 90.6% "
             "test accuracy, at most 100 passes) x measured training epoch time; evaluation "
             "time excluded")
    return finish_run(
        out_dir, benchmark=BENCHMARK, mode=mode, division=division, target=target,
        quality=out.quality,
        success=out.success, epochs=out.epochs, samples=out.samples,
        timed_window_s=(run_stop_ms - run_start_ms) / 1000.0, throughput=out.throughput(),
        epoch_time_s=epoch_time_s,
        projection=projection_for(mode, data.verdict, cfg.epochs_to_converge,
                                  SentimentConfig.epochs_to_converge, epoch_time_s, basis),
        stop_reason=out.stop_reason, dataset=data.verdict.label, cfg=cfg, seed=seed,
        platform=platform, first_losses=getattr(backend, "first_losses", None))


def log_hyperparameters(log: MLLog, cfg: SentimentConfig, vocab_size: int, n_train: int,
                        n_test: int, nodes: int = 1) -> None:
    # The global batch, whatever the nodes (each trains its slice); Adam's rate is for it.
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
    log.event(EdgeKeys.NODES, nodes)
    log.event(C.OPT_NAME, C.ADAM)
    log.event(C.OPT_BASE_LR, cfg.learning_rate)
    log.event(C.OPT_ADAM_BETA_1, cfg.adam_beta1)
    log.event(C.OPT_ADAM_BETA_2, cfg.adam_beta2)
    log.event(C.OPT_ADAM_EPSILON, cfg.adam_epsilon)
    log.event(C.TRAIN_SAMPLES, n_train)
    log.event(C.EVAL_SAMPLES, n_test)
    log.event(Keys.EMBEDDING_DIM, cfg.embedding_dim)
    log.event(Keys.CONV_FILTER_SIZES, list(cfg.filter_sizes))
    log.event(Keys.CONV_FILTERS, cfg.filters)
    log.event(Keys.VOCAB_SIZE, vocab_size)
