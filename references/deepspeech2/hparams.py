"""What a DeepSpeech2 run logs about itself: MLPerf's own keys where they exist, and the few it
lacks (mlperf_logging has no speech-recognition keys before RNN-T), defined here in one place.
Our rule file references/compliance/deepspeech2.yaml checks each of them."""

from __future__ import annotations

from mlperf_logging.mllog import constants as C

from references.common.mllogging import EdgeKeys, MLLog
from references.deepspeech2.text import LABELS


class Ds2Keys:
    """DeepSpeech2 keys (neither mlperf_logging nor the PyTorch reference has any)."""

    SAMPLE_RATE = "preproc_hp_sample_rate"
    WINDOW_S = "preproc_hp_window_s"
    STRIDE_S = "preproc_hp_stride_s"
    AUGMENT = "preproc_hp_augment"
    CONV_CHANNELS = "model_hp_conv_channels"
    RNN_TYPE = "model_hp_rnn_type"
    RNN_LAYERS = "model_hp_rnn_layers"
    RNN_HIDDEN = "model_hp_rnn_hidden_size"
    CLASSES = "model_hp_classes"
    NESTEROV = "sgd_opt_nesterov"
    LR_ANNEAL = "opt_learning_rate_anneal"
    GRAD_CLIP = "opt_gradient_clip_norm"
    SKIPPED = "mlperf_edge_skipped_utterances"


def log_hyperparameters(log: MLLog, cfg, model, n_train: int, n_eval: int,
                        skipped: int) -> None:
    conv_channels, layers, hidden = model.sizes
    log.event(EdgeKeys.MODEL_NAME, model.describe())
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
    log.event(C.OPT_NAME, C.SGD)
    log.event(C.OPT_BASE_LR, cfg.learning_rate)
    log.event(EdgeKeys.SGD_MOMENTUM, cfg.momentum)
    log.event(Ds2Keys.NESTEROV, True)
    log.event(C.OPT_WEIGHT_DECAY, cfg.weight_decay)
    log.event(Ds2Keys.LR_ANNEAL, cfg.learning_anneal)
    log.event(Ds2Keys.GRAD_CLIP, cfg.max_norm)
    log.event(C.TRAIN_SAMPLES, n_train)
    log.event(C.EVAL_SAMPLES, n_eval)
    log.event(Ds2Keys.SAMPLE_RATE, cfg.sample_rate)
    log.event(Ds2Keys.WINDOW_S, cfg.window_s)
    log.event(Ds2Keys.STRIDE_S, cfg.stride_s)
    log.event(Ds2Keys.AUGMENT, cfg.augment)
    log.event(Ds2Keys.CONV_CHANNELS, conv_channels)
    log.event(Ds2Keys.RNN_TYPE, "gru")
    log.event(Ds2Keys.RNN_LAYERS, layers)
    log.event(Ds2Keys.RNN_HIDDEN, hidden)
    log.event(Ds2Keys.CLASSES, len(LABELS))
    log.event(Ds2Keys.SKIPPED, skipped)
