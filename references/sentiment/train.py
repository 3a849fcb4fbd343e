"""Train the sentiment seq-CNN until test accuracy reaches the target, as the MLPerf reference
does: Adam, one pass over the shuffled training reviews per epoch, the whole test set evaluated
after every epoch, stop at the first evaluation that meets the target.

Reading, tokenising and encoding the reviews and building the vocabulary happen before the
timed window (init); batching (bucketing by length, padding) is inside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn as nn
from mlperf_logging.mllog import constants as C

from references.common import datasets
from references.common.harness import (
    TimedRun,
    finish_run,
    log_cache_clear,
    projection_for,
    run_reference,
    say,
)
from references.common.loop import Bounds, train_epochs
from references.common.mllogging import MLLog
from references.common.mllogging import SentimentKeys as Keys
from references.common.targets import target_for
from references.sentiment import data as sdata
from references.sentiment.config import SentimentConfig
from references.sentiment.model import SeqCNN

BENCHMARK = "sentiment"


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


def main(cfg: SentimentConfig, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None) -> int:
    """Run sentiment in ``mode``; write OUT/mllog.txt and OUT/result.json; return the exit code."""
    return run_reference(_train, sdata.check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division)


def _train(cfg: SentimentConfig, mode: str, division: str, data_dir: Path | None,
           out_dir: Path, seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    target = target_for(BENCHMARK, mode)
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
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = sdata.load(cfg, data_dir, seed, say)
    # One embedding row more than the vocabulary: id 0 is padding (sentiment/data.py).
    model = SeqCNN(len(data.vocab) + 1, cfg.embedding_dim, cfg.filters,
                   cfg.filter_sizes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate,
                                 betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    _log_hyperparameters(log, cfg, len(data.vocab), len(data.train), len(data.test))
    say(f"sentiment {mode} ({division} division): seq-CNN, embedding {cfg.embedding_dim}, "
        f"{cfg.filters} filters of widths {list(cfg.filter_sizes)}; {len(data.train):,} training"
        f" / {len(data.test):,} test reviews ({data.verdict.label}), {steps_per_epoch:,} steps of "
        f"{cfg.batch_size} per epoch; target {target.metric} >= {target.value}; "
        f"{threads} thread(s) on {device}")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = run.start()

    def step(batch) -> torch.Tensor:
        tokens, lengths, labels = batch
        loss = loss_fn(model(tokens, lengths), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    bounds = Bounds(cfg.max_epochs, cfg.max_steps, cfg.max_seconds, epochs_per_eval=1)
    out = train_epochs(
        log, bounds, target,
        batches=lambda epoch: sdata.batches(data.train, cfg.batch_size, rng, device),
        step=step, batch_size_of=lambda b: len(b[2]),
        evaluate=lambda: accuracy(model, data.test, cfg, device),
        steps_per_epoch=steps_per_epoch, metric=target.metric)
    run_stop_ms = run.stop(C.SUCCESS if out.success else C.ABORTED)

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
        platform=platform)


def _log_hyperparameters(log: MLLog, cfg: SentimentConfig, vocab_size: int, n_train: int,
                         n_test: int) -> None:
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
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
