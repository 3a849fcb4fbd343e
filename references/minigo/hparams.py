"""What a Minigo run logs about itself: the keys MLPerf's 0.6.0 rules require of minigo
(compliance_checker/training_0.6.0/minigo.yaml: global_batch_size, opt_base_learning_rate and
opt_learning_rate_decay_boundary_steps as lists, virtual_losses, and per generation save_model and
one eval_result), and the reference's own settings under keys defined here, in one place."""

from __future__ import annotations

from mlperf_logging.mllog import constants as C

from references.common.mllogging import EdgeKeys, MLLog
from references.minigo import mcts, model


class MinigoKeys:
    """Keys mlperf_logging's constants lack (the v0.6 minigo logs spell them so)."""

    SAVE_MODEL = "save_model"             # value {"iteration": generation}
    EVAL_RESULT = "eval_result"           # metadata {"iteration", "timestamp": s since run_start}
    VIRTUAL_LOSSES = "virtual_losses"     # leaves gathered under virtual loss per network call
    BOARD_SIZE = "board_size"
    KOMI = "komi"
    CONV_WIDTH = "model_hp_conv_width"
    FC_WIDTH = "model_hp_fc_width"
    TRUNK_LAYERS = "model_hp_residual_blocks"
    HISTORY = "model_hp_history_boards"
    READOUTS = "selfplay_readouts"
    GAMES_PER_GENERATION = "selfplay_games_per_generation"
    RESIGN_THRESHOLD = "selfplay_resign_threshold"
    RESIGN_DISABLED = "selfplay_resign_disabled_fraction"
    WINDOW_POSITIONS = "train_window_positions"
    WINDOW_GAMES = "train_window_games"
    STEPS_PER_GENERATION = "train_steps_per_generation"
    GATING_GAMES = "gating_games_per_side"
    GATING_READOUTS = "gating_readouts"
    GATING_WIN = "gating_win_fraction"
    EVAL_READOUTS = "eval_readouts"       # 0: the raw policy guesses (not the reference's MCTS)
    CHANCE = "mlperf_edge_eval_chance_pct"   # a uniformly random legal move's expected score
    # Each generation's phases, timed (metadata epoch_num): the loop's time, where it went.
    SELFPLAY = "mlperf_edge_selfplay"     # {"seconds", "games", "moves"}
    TRAIN = "mlperf_edge_train"           # {"seconds", "steps", "examples"}
    GATING = "mlperf_edge_gating"         # {"seconds", "win_fraction" (None: off), "kept"}


def log_hyperparameters(log: MLLog, cfg, net, holdout) -> None:
    log.event(EdgeKeys.MODEL_NAME, net.describe())
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
    log.event(C.OPT_NAME, C.SGD)                         # tf.train.MomentumOptimizer
    log.event(C.OPT_BASE_LR, list(cfg.learning_rates()))
    log.event(C.OPT_LR_DECAY_BOUNDARY_STEPS, list(cfg.lr_boundaries_steps))
    log.event(EdgeKeys.SGD_MOMENTUM, model.SGD_MOMENTUM)
    log.event(C.OPT_WEIGHT_DECAY, model.L2_STRENGTH)
    log.event(MinigoKeys.VIRTUAL_LOSSES, mcts.SIMULTANEOUS_LEAVES)
    log.event(C.EVAL_SAMPLES, holdout.positions)
    log.event(MinigoKeys.CHANCE, round(holdout.chance_pct, 3))
    for key, value in (
            (MinigoKeys.BOARD_SIZE, cfg.board_size), (MinigoKeys.KOMI, cfg.komi),
            (MinigoKeys.CONV_WIDTH, cfg.conv_width), (MinigoKeys.FC_WIDTH, cfg.fc_width),
            (MinigoKeys.TRUNK_LAYERS, cfg.trunk_layers), (MinigoKeys.HISTORY, cfg.history),
            (MinigoKeys.READOUTS, cfg.readouts),
            (MinigoKeys.GAMES_PER_GENERATION, cfg.games_per_generation),
            (MinigoKeys.RESIGN_THRESHOLD, cfg.resign_threshold),
            (MinigoKeys.RESIGN_DISABLED, cfg.resign_disabled_fraction),
            (MinigoKeys.WINDOW_POSITIONS, cfg.window_positions),
            (MinigoKeys.WINDOW_GAMES, cfg.window_games),
            (MinigoKeys.STEPS_PER_GENERATION, cfg.steps_per_generation()),
            (MinigoKeys.GATING_GAMES, cfg.gating_games_per_side),
            (MinigoKeys.GATING_READOUTS, cfg.gating_readouts),
            (MinigoKeys.GATING_WIN, cfg.gating_win_fraction),
            (MinigoKeys.EVAL_READOUTS, cfg.eval_readouts)):
        log.event(key, value)
