"""What a Mask R-CNN run logs about itself: the keys the MLPerf 0.6.0 maskrcnn rules require
(training_0.6.0/maskrcnn.yaml), those later rulesets added for it, and the few it lacks --
defined here, in one place."""

from __future__ import annotations

from mlperf_logging.mllog import constants as C

from references.common.mllogging import EdgeKeys, MLLog
from references.maskrcnn.config import BIAS_LR_FACTOR, REFERENCE_BATCH


class MaskRCNNKeys:
    """Mask R-CNN keys mlperf_logging lacks."""

    LR_SCALING = "mlperf_edge_learning_rate_scaling"     # the linear rule, when batch != 16
    BACKBONE = "mlperf_edge_backbone_init"               # checkpoint sha256, or from scratch
    BIAS_LR_FACTOR = "opt_bias_learning_rate_factor"
    CLASSES = "model_hp_classes"


def log_hyperparameters(log: MLLog, cfg, model, n_train: int, n_eval: int, classes: int,
                        backbone: str) -> None:
    learning_rate, warmup_steps, decay_steps = cfg.scaled()
    log.event(EdgeKeys.MODEL_NAME, model.describe())
    # -- the 0.6.0 rules' five
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_size)
    log.event(C.OPT_BASE_LR, learning_rate)
    log.event(C.OPT_LR_WARMUP_STEPS, warmup_steps)
    log.event(C.OPT_LR_WARMUP_FACTOR, cfg.warmup_factor)
    log.event(C.NUM_IMAGE_CANDIDATES, model.variant.rpn_fpn_post_nms_top_n_train)
    # -- later rulesets' (0.7.0 on) and the reference's others
    log.event(C.OPT_LR_DECAY_FACTOR, 0.1)
    log.event(C.OPT_LR_DECAY_STEPS, list(decay_steps))
    # None: the images keep their own size (smoke runs)
    log.event(C.MIN_IMAGE_SIZE, cfg.min_size_px)
    log.event(C.MAX_IMAGE_SIZE, cfg.max_size_px if cfg.min_size_px is not None else None)
    log.event(C.OPT_NAME, C.SGD)
    log.event(EdgeKeys.SGD_MOMENTUM, cfg.momentum)
    log.event(C.OPT_WEIGHT_DECAY, cfg.weight_decay)
    log.event(MaskRCNNKeys.BIAS_LR_FACTOR, BIAS_LR_FACTOR)
    log.event(C.OPT_GRADIENT_CLIP_NORM, cfg.grad_clip_norm)       # None: no clipping
    log.event(C.TRAIN_SAMPLES, n_train)
    log.event(C.EVAL_SAMPLES, n_eval)
    log.event(MaskRCNNKeys.CLASSES, classes)
    log.event(MaskRCNNKeys.BACKBONE, backbone)
    if cfg.batch_size != REFERENCE_BATCH:
        log.event(MaskRCNNKeys.LR_SCALING, {
            "rule": "linear", "reference_batch": REFERENCE_BATCH,
            "reference_learning_rate": cfg.learning_rate, "batch": cfg.batch_size,
            "learning_rate": learning_rate,
            "steps": "warmup and decay steps x 16 / batch (the same number of images)"})
