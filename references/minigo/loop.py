"""The timed window of a Minigo run: generations of self-play, training, gating and evaluation,
as the v0.5 reference's loop_main.sh runs loop_selfplay.py and loop_train_eval.py, until the
network predicts the target share of the professional moves.

One generation (MLPerf's "epoch"; 0.6.0 minigo.yaml's rules):

    epoch_start -> self-play: games_per_generation games by the best model (MCTS), into the
                   window of newest positions; the first selfplay_sgf_limit as OUT/selfplay/*.sgf
                -> training: examples_per_generation / batch_size SGD steps on batches drawn
                   from the window (8 symmetries), the learning rate by the global step
                -> save_model (OUT/model-latest.pt)
                -> gating: the new model against the best, 2 games a side; >= 55% replaces it
                   (training itself always continues from the newest weights, as the
                   reference's estimator working directory does)
    epoch_stop  -> eval_start/eval_stop/eval_accuracy: the NEW model's share of the professional
                   moves (every trained model is evaluated, gated or not: reference README)
                -> at the target: eval_result (the generation, and when its model was saved).

Each phase is timed in the log too: mlperf_edge_selfplay, mlperf_edge_train and
mlperf_edge_gating (seconds and counts, with the generation as epoch_num), beside the progress
line each generation prints.

Bounds (max_epochs, max_steps, max_seconds) are checked between games and between steps;
a generation they cut short is not evaluated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from mlperf_logging.mllog import constants as C

from references.common.harness import say
from references.common.mllogging import MLLog
from references.common.targets import Target, reached
from references.minigo import gating, model, selfplay
from references.minigo.hparams import MinigoKeys


@dataclass
class Nets:
    trainee: model.DualNet                # trained every generation
    best: model.DualNet                   # plays self-play; replaced when the trainee wins gating
    optimizer: torch.optim.Optimizer
    best_generation: int = 0              # 0: the random bootstrap model


@dataclass
class LoopResult:
    quality: float | None = None
    generations: int = 0                  # whole generations (evaluated)
    steps: int = 0
    examples: int = 0                     # positions trained on: batch x steps
    games: int = 0
    moves: int = 0                        # self-play moves, i.e. positions made
    selfplay_s: float = 0.0
    train_s: float = 0.0
    first_step_s: float = 0.0             # allocates gradients and optimizer state
    generation_times_s: list[float] = field(default_factory=list)   # self-play + SGD
    stop_reason: str = "max_epochs"       # max_epochs generations done

    @property
    def success(self) -> bool:
        return self.stop_reason == "target_reached"

    def throughput(self) -> float | None:
        """Training examples per second of self-play + SGD: making the data counts as loading
        it; gating, evaluation and the first SGD step (when there are others) are left out."""
        seconds, examples = self.selfplay_s + self.train_s, self.examples
        if self.steps > 1:
            seconds, examples = seconds - self.first_step_s, examples - examples // self.steps
        return examples / seconds if seconds > 0 and examples > 0 else None

    def generation_time_s(self, games_per_generation: int, steps_per_generation: int
                          ) -> float | None:
        """The mean measured generation (self-play + SGD); before one completed, a generation's
        games and steps at the measured rates, if both were measured."""
        if self.generation_times_s:
            return sum(self.generation_times_s) / len(self.generation_times_s)
        if self.games and self.steps:
            return (self.selfplay_s / self.games * games_per_generation
                    + self.train_s / self.steps * steps_per_generation)
        return None


def run(cfg, log: MLLog, target: Target, nets: Nets, holdout, *, run_start_ms: int,
        out_dir: Path, rng: np.random.Generator, device: str) -> LoopResult:
    out = LoopResult()
    window = selfplay.ReplayWindow(cfg.window_games, cfg.window_positions)
    play = selfplay.SelfPlayConfig(
        board_size=cfg.board_size, komi=cfg.komi, readouts=cfg.readouts,
        resign_threshold=cfg.resign_threshold,
        resign_disabled_fraction=cfg.resign_disabled_fraction, history=cfg.history)
    sgf_dir = Path(out_dir) / "selfplay"
    started = time.monotonic()

    def bound_reached() -> str | None:
        if cfg.max_steps is not None and out.steps >= cfg.max_steps:
            return "max_steps"
        if cfg.max_seconds is not None and time.monotonic() - started >= cfg.max_seconds:
            return "max_seconds"
        return None

    for generation in range(1, cfg.max_epochs + 1):
        if bound := bound_reached():
            out.stop_reason = bound
            return out
        # A block of one generation: the 0.6.0 common rules want blocks, minigo.yaml ignores them.
        log.start(C.BLOCK_START, metadata={C.FIRST_EPOCH_NUM: generation, C.EPOCH_COUNT: 1})
        log.start(C.EPOCH_START, metadata={C.EPOCH_NUM: generation})
        # -- self-play, by the best model ------------------------------------------------------
        t0, games, moves = time.monotonic(), 0, 0
        best_eval = model.make_evaluator(nets.best, rng)
        for _ in range(cfg.games_per_generation):
            if bound := bound_reached():
                break
            record = selfplay.play_game(best_eval, play, rng)
            window.add(record)
            if out.games < cfg.selfplay_sgf_limit:
                sgf_dir.mkdir(parents=True, exist_ok=True)
                name = f"minigo-{nets.best_generation:04d}"
                (sgf_dir / f"{out.games + 1:05d}.sgf").write_text(
                    selfplay.to_sgf(record, name, name), encoding="utf-8")
            games, moves = games + 1, moves + len(record)
            out.games, out.moves = out.games + 1, out.moves + len(record)
        selfplay_s = time.monotonic() - t0
        out.selfplay_s += selfplay_s
        log.event(MinigoKeys.SELFPLAY, {"seconds": round(selfplay_s, 3), "games": games,
                                        "moves": moves}, metadata={C.EPOCH_NUM: generation})
        # -- training, continuing from the newest weights -----------------------------------------
        t0, losses, steps = time.monotonic(), np.zeros(3), 0
        while not bound and steps < cfg.steps_per_generation() and len(window):
            if bound := bound_reached():
                break
            lr = model.learning_rate(out.steps, cfg.lr_boundaries_steps, cfg.learning_rates())
            for group in nets.optimizer.param_groups:
                group["lr"] = lr
            planes, pi, z = (torch.from_numpy(a).to(device)
                             for a in window.sample(cfg.batch_size, rng))
            step_started = time.monotonic()
            losses += model.train_step(nets.trainee, nets.optimizer, planes, pi, z)
            if out.steps == 0:
                out.first_step_s = time.monotonic() - step_started
            steps, out.steps, out.examples = steps + 1, out.steps + 1, out.examples + cfg.batch_size
        train_s = time.monotonic() - t0
        out.train_s += train_s
        log.event(MinigoKeys.TRAIN, {"seconds": round(train_s, 3), "steps": steps,
                                     "examples": steps * cfg.batch_size},
                  metadata={C.EPOCH_NUM: generation})
        if bound or not len(window):
            log.end(C.EPOCH_STOP, metadata={C.EPOCH_NUM: generation})
            log.end(C.BLOCK_STOP, metadata={C.FIRST_EPOCH_NUM: generation})
            out.stop_reason = bound or out.stop_reason
            say(f"generation {generation}: stopped by {bound or 'an empty window'} after "
                f"{games} game(s) and {steps} step(s); not evaluated")
            return out
        out.generation_times_s.append(selfplay_s + train_s)
        save_ms = _save(log, nets.trainee, out_dir, generation)
        # -- gating: does the new model replace the best? ----------------------------------------
        t0, fraction = time.monotonic(), None
        if cfg.gating_games_per_side:
            fraction = gating.win_fraction(
                model.make_evaluator(nets.trainee, rng), model.make_evaluator(nets.best, rng),
                cfg.gating_games_per_side, cfg.board_size, cfg.komi, cfg.gating_readouts)
        if fraction is None or gating.keeps(fraction, cfg.gating_win_fraction):
            nets.best.load_state_dict(nets.trainee.state_dict())
            nets.best_generation = generation
        gating_s = time.monotonic() - t0
        log.event(MinigoKeys.GATING, {"seconds": round(gating_s, 3), "win_fraction": fraction,
                                      "kept": nets.best_generation == generation},
                  metadata={C.EPOCH_NUM: generation})
        log.end(C.EPOCH_STOP, metadata={C.EPOCH_NUM: generation})
        # -- evaluation: the new model on the professional games --------------------------------
        t0 = time.monotonic()
        log.start(C.EVAL_START, metadata={C.EPOCH_NUM: generation})
        out.quality = selfplay.predict_accuracy(model.make_evaluator(nets.trainee, rng),
                                                holdout.games, rng, readouts=cfg.eval_readouts)
        log.end(C.EVAL_STOP, metadata={C.EPOCH_NUM: generation})
        log.event(C.EVAL_ACCURACY, out.quality, metadata={C.EPOCH_NUM: generation})
        log.end(C.BLOCK_STOP, metadata={C.FIRST_EPOCH_NUM: generation})
        out.generations = generation
        total, policy, value = losses / max(1, steps)
        kept = "kept" if nets.best_generation == generation else "rejected"
        gated = "no gating" if fraction is None else f"gating {100 * fraction:.0f}% -> {kept}"
        say(f"generation {generation}: {games} games, {moves} moves ({moves / selfplay_s:.1f}/s), "
            f"{steps * cfg.batch_size:,} examples (loss {total:.3f}: policy {policy:.3f}, value "
            f"{value:.3f}), {gated}; {target.metric} {out.quality:.1f} (target {target.value:g}); "
            f"s: self-play {selfplay_s:.1f}, train {train_s:.1f}, gating {gating_s:.1f}, eval "
            f"{time.monotonic() - t0:.1f}")
        if reached(target, out.quality):
            log.event(MinigoKeys.EVAL_RESULT, out.quality, metadata={
                "iteration": generation, "timestamp": (save_ms - run_start_ms) / 1000.0})
            out.stop_reason = "target_reached"
            return out
    return out


def _save(log: MLLog, net: model.DualNet, out_dir: Path, generation: int) -> int:
    """The trained model to OUT/model-latest.pt (overwritten each generation); save_model's time."""
    torch.save(net.state_dict(), Path(out_dir) / "model-latest.pt")
    return log.event(MinigoKeys.SAVE_MODEL, {"iteration": generation})
