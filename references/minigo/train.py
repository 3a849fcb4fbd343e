"""Train Minigo by self-play until its policy predicts the target share of the moves of the
professional games, as the MLPerf v0.5 reference does (the generations are in loop.py).

Before the timed window, untimed: the professional games are read and replayed through the
rules (a malformed, non-9x9 or illegal game is a one-line error naming the file); in smoke mode
they are first made, by the fixed player of smoke.py. Then the MLPerf init (two networks with
the reference's random initialisation: the one trained and the best, which plays) and the
timed window: every generation from the first self-play move to the evaluation that meets the
target. result.json's figures, for a loop that has no epochs over a fixed dataset:

- ``epochs``: generations completed (each evaluated); ``stop_reason`` "max_epochs": max_epochs
  generations were played;
- ``samples_trained``: positions trained on (batch size x SGD steps);
- ``throughput_samples_per_s``: those positions per second of self-play + SGD (making the
  training data is this benchmark's data loading); gating and evaluation are left out;
- ``epoch_time_s``: a generation's self-play + SGD, measured (or, before one completed, its
  games and steps at the measured rates);
- reduced mode's projection: epochs_to_converge generations x that time, the count an
  ASSUMPTION (the reference publishes hours, not generations), and none on data that is not the
  MLPerf holdout (the reference's four games, known by their SHA-256: data.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np
import torch
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
from references.common.mllogging import MLLog
from references.common.targets import target_for
from references.minigo import loop, model
from references.minigo.config import MinigoConfig
from references.minigo.data import check_data_dir, load_holdout
from references.minigo.hparams import log_hyperparameters

BENCHMARK = "minigo"


def main(cfg: MinigoConfig, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None) -> int:
    """Run Minigo in ``mode``; write OUT/mllog.txt, OUT/selfplay/*.sgf and OUT/result.json."""
    return run_reference(_train, check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division)


def make_net(cfg: MinigoConfig, device: str) -> model.DualNet:
    return model.DualNet(cfg.board_size, cfg.conv_width, cfg.fc_width, cfg.trunk_layers,
                         cfg.history).to(device)


def _train(cfg: MinigoConfig, mode: str, division: str, data_dir: Path | None, out_dir: Path,
           seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    target = target_for(BENCHMARK, mode)
    # -- the professional games: untimed, before the MLPerf init ----------------------------------
    holdout = load_holdout(cfg, data_dir, out_dir)
    datasets.require_mlperf(holdout.verdict, BENCHMARK, mode, division)

    # -- init: untimed ------------------------------------------------------------------------
    log_cache_clear(log, holdout.files)
    log.start(C.INIT_START)
    log.submission(BENCHMARK, mode, platform, division)
    log.event(C.SEED, seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trainee, best = make_net(cfg, device), make_net(cfg, device)
    best.load_state_dict(trainee.state_dict())             # generation 0: the bootstrap model
    nets = loop.Nets(trainee, best, model.make_optimizer(trainee, cfg.learning_rate))
    log_hyperparameters(log, cfg, trainee, holdout)
    guesses = ("the raw policy's most probable move (not the reference's search)"
               if cfg.eval_readouts == 0 else f"an MCTS of {cfg.eval_readouts} readouts a move")
    say(f"minigo {mode} ({division} division): {trainee.describe()}; {cfg.games_per_generation} "
        f"self-play games of {cfg.readouts} readouts and {cfg.steps_per_generation():,} steps "
        f"of {cfg.batch_size} a generation; scored on {holdout.verdict.label} by {guesses}; "
        f"a random legal move would score {holdout.chance_pct:.1f}%; target {target.metric} >= "
        f"{target.value:g}; {threads} thread(s) on {device}")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = run.start()
    out = loop.run(cfg, log, target, nets, holdout, run_start_ms=run_start_ms, out_dir=out_dir,
                   rng=rng, device=device)
    run_stop_ms = run.stop(C.SUCCESS if out.success else C.ABORTED)

    # -- report -------------------------------------------------------------------------------
    generation_s = out.generation_time_s(cfg.games_per_generation, cfg.steps_per_generation())
    if out.moves:
        say(f"self-play: {out.games} games, {out.moves:,} moves, "
            f"{out.moves / out.selfplay_s:.1f} moves/s")
    basis = (f"{cfg.epochs_to_converge:g} generations: an ASSUMPTION of mlperf-edge, not an "
             "MLPerf figure (the reference publishes hours, not generations -- README: ~0.5% a "
             "hour, 34% at 60 h on 16 CPUs and a P100 -- and loop_main.sh stops at 1000, the cap "
             "used here as an upper bound) x measured generation time (self-play + SGD; gating "
             "and evaluation excluded)")
    reference = MinigoConfig()
    if (cfg.board_size, cfg.conv_width, cfg.trunk_layers, cfg.readouts) != (
            reference.board_size, reference.conv_width, reference.trunk_layers,
            reference.readouts):
        basis += f"; the count is for the reference's loop, this run: {trainee.describe()}, " \
                 f"{cfg.readouts} readouts"
    return finish_run(
        out_dir, benchmark=BENCHMARK, mode=mode, division=division, target=target,
        quality=out.quality, success=out.success, epochs=out.generations, samples=out.examples,
        timed_window_s=(run_stop_ms - run_start_ms) / 1000.0, throughput=out.throughput(),
        epoch_time_s=generation_s,
        projection=projection_for(mode, holdout.verdict, cfg.epochs_to_converge,
                                  MinigoConfig.epochs_to_converge, generation_s, basis),
        stop_reason=out.stop_reason, dataset=holdout.verdict.label, cfg=cfg, seed=seed,
        platform=platform)
