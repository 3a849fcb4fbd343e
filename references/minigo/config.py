"""Minigo configuration: one typed dataclass and its three presets.

full() carries the MLPerf training v0.5 reference (mlcommons/training reinforcement/: the loop
of tensorflow/minigo/loop_main.sh, loop_selfplay.py and loop_train_eval.py, run with
shared/params/final.json): 9x9 Go with komi 7.5; the dual network of dual_net.py
get_default_hyperparams (32 filters -- the power of two nearest 81/3 --, 9 residual blocks, a
value layer of 64) on features.py's 17 planes (8 boards); per generation 16 self-play games
(MAX_GAMES_PER_GENERATION) of 200 readouts a move (SP_READOUTS), resigning at -0.95 except in 5%
of games; training on the newest 2,000,000 positions (WINDOW_SIZE) in batches of 16
(TRAIN_BATCH_SIZE) for 100,000 examples a generation (EXAMPLES_PER_GENERATION: 6,250 steps); SGD
with momentum 0.9 and l2 1e-4, learning rate 1e-2, 1e-3 after 1,000,000 steps and 1e-4 after
2,000,000 (dual_net.py model_fn); then the new model plays the current best 2 games a side at 200
readouts (EVAL_GAMES_PER_SIDE, loop_train_eval.py evaluate) and replaces it only with >= 55% of
the wins (EVAL_WIN_PCT_FOR_NEW_MODEL); every trained model is scored on the professional games;
stop at 40% (TERMINATION_ACCURACY) or after 1,000 generations (loop_main.sh).

The README lets entrants change train_batch_size, lr_rates and lr_boundaries: here batch_size,
learning_rate and lr_decay (rates = learning_rate x lr_decay^k) and lr_boundaries_steps.

Torch-free: the agent builds and validates configs without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from references.common.errors import ConfigError


@dataclass(frozen=True)
class MinigoConfig:
    CLOSED_TUNABLE: ClassVar[tuple[str, ...]] = (
        "batch_size", "learning_rate", "lr_decay", "lr_boundaries_steps")
    # Upper bounds on sizes and counts a job may ask for.
    LIMITS: ClassVar[dict[str, float]] = {
        "conv_width": 1024, "fc_width": 4096, "trunk_layers": 64, "readouts": 100_000,
        "games_per_generation": 100_000, "window_positions": 10**8, "window_games": 10**6,
        "batch_size": 65_536, "examples_per_generation": 10**8, "lr_boundaries_steps": 10**9,
        "gating_games_per_side": 1000, "gating_readouts": 100_000, "eval_readouts": 100_000,
        "max_epochs": 10**5, "epochs_to_converge": 10**5, "selfplay_sgf_limit": 10**5,
        "threads": 1024}

    # -- data: the professional games the network is scored on ----------------------------------
    dataset: str = "benchmark_sgf"        # the folder --data names, or "smoke" (smoke.py's fixture)
    board_size: int = 9                   # BOARD_SIZE
    komi: float = 7.5                     # Minigo's 9x9 komi

    # -- model (dual_net.py get_default_hyperparams for 9x9) --------------------------------------
    conv_width: int = 32                  # k: 2 ** round(log2(81 / 3))
    fc_width: int = 64                    # 2 * k
    trunk_layers: int = 9                 # num_shared_layers = N
    history: int = 8                      # boards in the input planes (17 planes)

    # -- self-play (shared/params/final.json, selfplay_mcts.py) ---------------------------------
    readouts: int = 200                   # SP_READOUTS
    games_per_generation: int = 16        # MAX_GAMES_PER_GENERATION
    resign_threshold: float = 0.95
    resign_disabled_fraction: float = 0.05
    window_positions: int | None = 2_000_000   # WINDOW_SIZE: newest positions trained on
    window_games: int | None = None

    # -- training (dual_net.py) -------------------------------------------------------------------
    batch_size: int = 16                  # TRAIN_BATCH_SIZE
    examples_per_generation: int = 100_000     # EXAMPLES_PER_GENERATION: / batch_size steps
    learning_rate: float = 0.01           # piecewise_constant values [1e-2, 1e-3, 1e-4] ...
    lr_decay: float = 0.1
    lr_boundaries_steps: tuple[int, ...] = (1_000_000, 2_000_000)     # ... at these steps

    # -- model gating (loop_train_eval.py evaluate) ------------------------------------------------
    gating_games_per_side: int = 2        # EVAL_GAMES_PER_SIDE; 0: every new model is kept
    gating_readouts: int = 200
    gating_win_fraction: float = 0.55     # EVAL_WIN_PCT_FOR_NEW_MODEL

    # -- evaluation on the professional games (predict_games.py predict_move) -------------------
    # Each move guessed by an MCTS of this many readouts, as the reference; 0: the raw policy's
    # most probable move (cheaper, stricter; the smoke preset's, and it says so).
    eval_readouts: int = 1000

    # -- stopping ---------------------------------------------------------------------------------
    max_epochs: int = 1000                # generations (MLPerf's epochs); loop_main.sh: 1..1000
    max_steps: int | None = None          # training steps, over all generations
    max_seconds: float | None = None

    # -- projection (reduced mode) -------------------------------------------------------------
    # Generations to 40%: NOT published. The reference states hours (README: ~0.5% a hour, 34% at
    # 60 h on 16 CPUs and a P100); 1,000 is loop_main.sh's cap, our ASSUMPTION as an upper bound,
    # labelled as such in every projection.
    epochs_to_converge: float = 1000.0

    # -- output ---------------------------------------------------------------------------------
    selfplay_sgf_limit: int = 64          # self-play games written to OUT/selfplay/, at most

    # -- machine -------------------------------------------------------------------------------
    # One thread by default: the network sees 8 positions a call in search and 16 a step in
    # training, too little to share. Measured on the busy 2-core machine, a tiny reduced run's
    # self-play made 6.4 moves/s on 2 threads and 506 on 1.
    threads: int = 1
    device: str = "auto"

    @classmethod
    def full(cls) -> MinigoConfig:
        """The v0.5 reference loop on 9x9, to 40% of the professional moves."""
        return cls()

    @classmethod
    def reduced(cls) -> MinigoConfig:
        """The full loop, bounded: one generation or five minutes."""
        return replace(cls(), max_epochs=1, max_seconds=300.0)

    @classmethod
    def smoke(cls) -> MinigoConfig:
        """The loop on 5x5 with a 2-block net of 32 filters: 16 self-play games of 48 readouts
        a generation (~400-500 positions), 96 steps of 64 on the newest 48 games (~3 passes
        over them, not hundreds), gating at 32 readouts; scored by the raw policy on the
        committed games of a fixed player, GNU Go (smoke.py). One thread.

        gating_win_fraction 0.5, not the reference's 0.55: at 5x5 with komi 0.5 black wins
        almost every game, so 2 games a side mostly split 2-2, and at 0.55 self-play would stay
        on the random bootstrap model for generations; at 0.5 a new model that loses more than
        it wins is still rejected."""
        return replace(cls(), eval_readouts=0, dataset="smoke", board_size=5, komi=0.5,
                       conv_width=32, fc_width=64, trunk_layers=2, readouts=48,
                       games_per_generation=16, resign_disabled_fraction=1.0,
                       window_positions=None, window_games=48, batch_size=64,
                       examples_per_generation=64 * 96, learning_rate=0.05, gating_readouts=32,
                       gating_win_fraction=0.5, max_epochs=30, selfplay_sgf_limit=16)

    def data_folder(self) -> str | None:
        return None if self.dataset == "smoke" else self.dataset

    def steps_per_generation(self) -> int:
        return max(1, self.examples_per_generation // self.batch_size)

    def learning_rates(self) -> tuple[float, ...]:
        """The piecewise-constant rates, one more than the boundaries."""
        return tuple(self.learning_rate * self.lr_decay ** k
                     for k in range(len(self.lr_boundaries_steps) + 1))

    def validate(self) -> MinigoConfig:
        boundaries = self.lr_boundaries_steps
        checks = [
            (self.dataset.strip() != "" and "/" not in self.dataset and self.dataset != "..",
             "dataset must be a folder name or smoke"),
            (5 <= self.board_size <= 19, "board_size must be in 5..19"),
            (abs(self.komi) <= 1000, "komi must be in -1000..1000"),
            (min(self.conv_width, self.fc_width) >= 1, "conv_width and fc_width must be >= 1"),
            (self.trunk_layers >= 0, "trunk_layers must be >= 0"),
            (1 <= self.history <= 8, "history must be in 1..8"),
            (self.readouts >= 1, "readouts must be >= 1"),
            (self.games_per_generation >= 1, "games_per_generation must be >= 1"),
            (0 < self.resign_threshold <= 1, "resign_threshold must be in (0, 1]"),
            (0 <= self.resign_disabled_fraction <= 1, "resign_disabled_fraction must be in [0, 1]"),
            (self.window_positions is not None or self.window_games is not None,
             "window_positions or window_games must be set"),
            ((self.window_positions or 1) >= 1 and (self.window_games or 1) >= 1,
             "window sizes must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.examples_per_generation >= self.batch_size,
             "examples_per_generation must be >= batch_size"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 < self.lr_decay <= 1, "lr_decay must be in (0, 1]"),
            (all(b >= 1 for b in boundaries) and list(boundaries) == sorted(set(boundaries)),
             "lr_boundaries_steps must be increasing steps >= 1"),
            (self.gating_games_per_side >= 0, "gating_games_per_side must be >= 0 (0: no gating)"),
            (self.gating_readouts >= 1, "gating_readouts must be >= 1"),
            (0 <= self.gating_win_fraction <= 1, "gating_win_fraction must be in [0, 1]"),
            (self.eval_readouts >= 0, "eval_readouts must be >= 0 (0: the raw policy)"),
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0"),
            (self.epochs_to_converge > 0, "epochs_to_converge must be > 0"),
            (self.selfplay_sgf_limit >= 0, "selfplay_sgf_limit must be >= 0"),
            (self.threads >= 0, "threads must be >= 0 (0 = automatic)"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self
