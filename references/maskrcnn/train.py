"""Train Mask R-CNN until box AND mask AP on the evaluation split reach the target, as the MLPerf
v0.5 reference does: SGD with momentum, linear warmup then the 1x schedule's step decays, the
sum of the RPN, box and mask losses per step, COCOeval box and mask AP on val2017 after every
epoch, stop at the first evaluation that meets both.

Before the MLPerf init (untimed): reading and indexing the annotation JSON, checking that every
image file is there, identifying the dataset (a closed full run on anything but COCO 2017 is
refused here), building the model and loading the backbone checkpoint (one error line if it
does not fit, nothing logged yet). The init builds the optimizer (and, without a checkpoint,
calibrates the body's frozen batch norm on one batch). Inside the timed window: decoding,
resizing and flipping images, training, and evaluation, as in the reference.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import torch
from mlperf_logging.mllog import constants as C

from references.common import datasets, runtime
from references.common.errors import ConfigError, DatasetError, one_line_from_workers
from references.common.harness import (
    TimedRun,
    finish_run,
    log_cache_clear,
    projection_for,
    run_reference,
    say,
)
from references.common.loop import Bounds, Evaluation, train_epochs
from references.common.mllogging import MLLog
from references.common.targets import joint_quality, parts_reached, target_for
from references.maskrcnn import coco, evaluation, identity, synthetic
from references.maskrcnn.backbone import calibrate_frozen_batch_norm_
from references.maskrcnn.config import BIAS_LR_FACTOR, MaskRCNNConfig
from references.maskrcnn.data import backbone_path, check_data_dir
from references.maskrcnn.hparams import log_hyperparameters
from references.maskrcnn.model import MaskRCNN, batch_images

BENCHMARK = "maskrcnn"
CALIBRATION_IMAGES = 4            # from-scratch runs: frozen batch norm measured on these


def main(cfg: MaskRCNNConfig, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None) -> int:
    """Run Mask R-CNN in ``mode``; write OUT/mllog.txt, OUT/coco_eval.json, OUT/result.json."""
    return run_reference(_train, check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division)


def lr_at(step: int, cfg: MaskRCNNConfig) -> float:
    """The 1x schedule at this batch size, ``step`` counting the updates made: the peak lr
    times x0.1 per decay step passed, ramped linearly from warmup_factor over warmup steps
    (Detectron's WARM_UP_METHOD linear)."""
    peak, warmup_steps, decay_steps = cfg.scaled()
    factor = 0.1 ** sum(step >= boundary for boundary in decay_steps)
    if step < warmup_steps:
        alpha = step / warmup_steps
        factor *= cfg.warmup_factor * (1 - alpha) + alpha
    return peak * factor


def make_optimizer(model: torch.nn.Module, cfg: MaskRCNNConfig) -> torch.optim.SGD:
    """SGD with momentum over the trainable parameters; biases at BIAS_LR_FACTOR x the learning
    rate and without weight decay (maskrcnn-benchmark's solver defaults). Each group's
    ``lr_factor`` scales the schedule's learning rate."""
    weights, biases = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (biases if name.endswith(".bias") else weights).append(p)
    return torch.optim.SGD([
        {"params": weights, "weight_decay": cfg.weight_decay, "lr_factor": 1.0},
        {"params": biases, "weight_decay": 0.0, "lr_factor": BIAS_LR_FACTOR}],
        lr=0.0, momentum=cfg.momentum)


@dataclass
class Data:
    train: coco.CocoInstances
    evals: coco.CocoInstances
    verdict: datasets.Verdict
    files: list[Path] | None          # every image file, for the cache clear (None: synthetic)


def load_data(cfg: MaskRCNNConfig, mode: str, division: str, data_dir: Path | None,
              out_dir: Path, seed: int) -> Data:
    """Index both splits (synthetic ones are written first, into OUT/synthetic-coco) and say
    what the data is; a closed full run on anything but COCO 2017 stops here."""
    if cfg.dataset == "synthetic":
        root = synthetic.write(out_dir, cfg.synthetic_train, cfg.synthetic_eval, seed)
        verdict = datasets.synthetic(
            f"synthetic COCO-format shapes ({cfg.synthetic_train} train / {cfg.synthetic_eval} "
            f"val images, {len(synthetic.CATEGORIES)} categories, written to "
            f"{synthetic.FOLDER}/)")
    else:
        root = Path(data_dir)
    sizes = {"min_size_px": cfg.min_size_px, "max_size_px": cfg.max_size_px}
    train = coco.CocoInstances(root, "train", flip_prob=cfg.flip_prob, seed=seed, **sizes)
    evals = coco.CocoInstances(root, "val", train=False, **sizes)
    if cfg.dataset != "synthetic":
        verdict = identity.verdict(train.coco.dataset, evals.coco.dataset, root)
        datasets.require_mlperf(verdict, BENCHMARK, mode, division)
    if train.category_ids != evals.category_ids:
        raise DatasetError(f"{train.ann_file} and {evals.ann_file} list different categories")
    if not len(train):
        raise DatasetError(f"{train.ann_file}: no image has an annotation to train on")
    files = None if cfg.dataset == "synthetic" else [
        ds.image_dir / ds.coco.imgs[i]["file_name"] for ds in (train, evals) for i in ds.image_ids]
    return Data(train, evals, verdict, files)


def build_model(cfg: MaskRCNNConfig, classes: int, device: str, checkpoint: Path | None
                ) -> tuple[MaskRCNN, str | None]:
    """The model, its backbone loaded from ``checkpoint`` if there is one: (model, sha256)."""
    model = MaskRCNN(classes, cfg.variant)
    digest = None
    if checkpoint is not None:
        digest = model.load_backbone(checkpoint)
        if cfg.backbone_sha256 is not None and digest != cfg.backbone_sha256:
            raise ConfigError(f"backbone checkpoint {checkpoint} has sha256 "
                              f"{digest}, but backbone_sha256 expects {cfg.backbone_sha256}")
    return model.to(device), digest


def backbone_text(cfg: MaskRCNNConfig, digest: str | None) -> str:
    if digest is None:
        return ("backbone FROM SCRATCH (no checkpoint; the reference starts from "
                "ImageNet-trained weights)")
    return f"backbone from checkpoint {Path(cfg.backbone_checkpoint).name} (sha256 {digest})"


def _train(cfg: MaskRCNNConfig, mode: str, division: str, data_dir: Path | None,
           out_dir: Path, seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    target = target_for(BENCHMARK, mode)
    torch.manual_seed(seed)
    # -- before the MLPerf init: untimed, nothing logged yet ----------------------------------
    data = load_data(cfg, mode, division, data_dir, out_dir, seed)
    classes = len(data.train.category_ids)
    model, digest = build_model(cfg, classes, device, backbone_path(cfg, data_dir))
    backbone = backbone_text(cfg, digest)
    dataset = datasets.fit(f"{data.verdict.label}; {backbone}")
    cfg = replace(cfg, backbone_sha256=digest)        # the result's config records the hash
    workers = cfg.workers if cfg.workers >= 0 else max(0, min(8, runtime.available_cpus() - 1))
    common = {"collate_fn": coco.collate, "num_workers": workers}
    train_loader = torch.utils.data.DataLoader(
        data.train, batch_size=cfg.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed), **common)
    eval_loader = torch.utils.data.DataLoader(data.evals, batch_size=cfg.eval_batch_size,
                                              **common)

    # -- init: untimed ------------------------------------------------------------------------
    log_cache_clear(log, data.files)
    log.start(C.INIT_START)
    log.submission(BENCHMARK, mode, platform, division)
    log.event(C.SEED, seed)
    if digest is None:                # a random body passes unnormalised input: measure it
        images = [data.train[i][0] for i in range(min(CALIBRATION_IMAGES, len(data.train)))]
        calibrate_frozen_batch_norm_(model.backbone.body,
                                     batch_images([im.to(device) for im in images],
                                                  model.pixel_mean)[0])
    model.train()
    optimizer = make_optimizer(model, cfg)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    log_hyperparameters(log, cfg, model, len(data.train), len(data.evals), classes, backbone)
    peak, warmup_steps, _ = cfg.scaled()
    say(f"maskrcnn {mode} ({division} division): {model.describe()}; {backbone}; "
        f"{len(data.train):,} training / {len(data.evals):,} evaluation images "
        f"({data.verdict.label}), "
        f"{steps_per_epoch:,} steps of <= {cfg.batch_size} per epoch, lr {peak:g} after "
        f"{warmup_steps:,} warmup steps; target {target.metric} >= {target.value:g}; "
        f"{threads} thread(s) on {device}")
    if mode == "full" and not data.verdict.is_mlperf:
        say("note: the MLPerf targets are defined on COCO 2017; this run is not comparable")
    if mode == "full" and digest is None:
        say("note: the backbone starts from scratch; the reference starts from ImageNet-trained "
            "weights, so this run is not comparable")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = run.start()
    state = {"step": 0, "epoch": 0}
    scores: list[dict] = []

    def batches(epoch: int):
        state["epoch"] = epoch
        data.train.set_epoch(epoch)       # a fresh draw of flips per epoch
        return one_line_from_workers(train_loader)

    def step(batch) -> torch.Tensor:
        images, targets = batch
        lr = lr_at(state["step"], cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_factor"]
        losses = model([im.to(device) for im in images],
                       [{k: t[k].to(device) for k in ("boxes", "labels", "masks")}
                        for t in targets])
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
        optimizer.step()
        state["step"] += 1
        return loss.detach()

    def evaluate() -> Evaluation:
        summaries: dict[str, str] = {}
        ap = evaluation.average_precision(model, data.evals,
                                          one_line_from_workers(eval_loader), device,
                                          summaries)
        values = {"bbox_map": ap["bbox"], "segm_map": ap["segm"]}
        quality = joint_quality(target, values)
        scores.append({"epoch": state["epoch"], **values, "quality": quality,
                       "met": parts_reached(target, values), "cocoeval": summaries})
        (Path(out_dir) / "coco_eval.json").write_text(json.dumps(scores, indent=1) + "\n")
        wanted = dict(target.parts)
        say(f"epoch {state['epoch']}: box AP {ap['bbox']:.4f} (target {wanted['bbox_map']}), "
            f"mask AP {ap['segm']:.4f} (target {wanted['segm_map']})")
        return Evaluation(quality, {"BBOX": ap["bbox"], "SEGM": ap["segm"]})

    bounds = Bounds(cfg.max_epochs, cfg.max_steps, cfg.max_seconds, epochs_per_eval=1)
    out = train_epochs(log, bounds, target, batches=batches, step=step, batch_size_of=lambda b:
                       len(b[0]), evaluate=evaluate, steps_per_epoch=steps_per_epoch,
                       metric=target.metric)
    run_stop_ms = run.stop(C.SUCCESS if out.success else C.ABORTED)

    # -- report -------------------------------------------------------------------------------
    epoch_time_s = out.epoch_time_s(steps_per_epoch)
    basis = (f"{cfg.epochs_to_converge:.4g} epochs: the 1x schedule's length (MAX_ITER 90,000 "
             "x 16 images / 118,287 train2017 images), an upper bound and NOT a measured "
             "convergence point (a reference run stops at the first evaluation meeting box AP "
             "0.377 and mask AP 0.339) x measured training epoch time; evaluation time excluded")
    if cfg.variant != MaskRCNNConfig.variant:
        basis += f"; the epoch count is for Mask R-CNN R-50-FPN, this run: {model.describe()}"
    if digest is None:
        basis += "; and for a backbone from ImageNet-trained weights, this run's is from scratch"
    return finish_run(
        out_dir, benchmark=BENCHMARK, mode=mode, division=division, target=target,
        quality=out.quality, success=out.success, epochs=out.epochs, samples=out.samples,
        timed_window_s=(run_stop_ms - run_start_ms) / 1000.0, throughput=out.throughput(),
        epoch_time_s=epoch_time_s,
        projection=projection_for(mode, data.verdict, cfg.epochs_to_converge,
                                  MaskRCNNConfig.epochs_to_converge, epoch_time_s, basis),
        stop_reason=out.stop_reason, dataset=dataset, cfg=cfg, seed=seed, platform=platform,
        quality_parts={k: scores[-1][k] for k in ("bbox_map", "segm_map")} if scores else None)
