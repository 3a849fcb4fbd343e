"""Mask R-CNN wired into the harness: the presets against the v0.5 reference, the schedule, the
two-part target, the synthetic COCO and the dataset identity; then runs through the CLI: one-line
user errors, the smoke run checked by the real MLPerf compliance checker (ruleset 0.6.0), and a
reduced run on a tiny COCO in the real format (test_maskrcnn_coco.py's) whose backbone comes from
a checkpoint of our ResNet reference."""

from __future__ import annotations

import hashlib
import json

import pytest

from references import registry
from references.common import datasets
from references.common.errors import ConfigError, DatasetError
from references.common.targets import (
    joint_quality,
    parts_reached,
    reached,
    target_for,
)
from references.compliance import check
from references.maskrcnn import identity
from references.maskrcnn.data import check_data_dir
from tests.references.test_maskrcnn_coco import write_coco

SPEC = registry.get("maskrcnn")
COCO_2017 = {"train images": 118_287, "train annotations": 860_001, "val images": 5_000,
             "val annotations": 36_781}


# -- the presets, the schedule and the target ----------------------------------------------------

def test_the_full_preset_is_the_v05_reference():
    cfg = SPEC.make_config("full")
    assert (cfg.variant, cfg.batch_size, cfg.learning_rate, cfg.momentum, cfg.weight_decay) == \
        ("r50-fpn", 16, 0.02, 0.9, 1e-4)
    assert (cfg.warmup_factor, cfg.warmup_steps, cfg.decay_steps) == (1 / 3, 500, (60_000, 80_000))
    assert (cfg.min_size_px, cfg.max_size_px, cfg.flip_prob) == (800, 1333, 0.5)
    assert cfg.grad_clip_norm is None and cfg.backbone_checkpoint is None
    assert cfg.epochs_to_converge == pytest.approx(12.17, abs=0.005)
    assert cfg.scaled() == (0.02, 500, (60_000, 80_000))
    reduced = SPEC.make_config("reduced")
    assert reduced.variant == cfg.variant and reduced.max_seconds == 300.0
    smoke = SPEC.make_config("smoke")
    assert (smoke.variant, smoke.dataset, smoke.threads) == ("r14-fpn-tiny", "synthetic", 1)
    assert smoke.grad_clip_norm is not None          # ours, stated: from scratch, clipped


def test_another_batch_scales_the_learning_rate_and_the_schedule_linearly():
    cfg = SPEC.make_config("full", {"batch_size": "8"})              # closed: batch is tunable
    assert cfg.scaled() == (0.01, 1000, (120_000, 160_000))
    from references.maskrcnn.train import lr_at

    full = SPEC.make_config("full")
    assert lr_at(0, full) == pytest.approx(0.02 / 3)
    assert lr_at(250, full) == pytest.approx(0.02 * (1 / 3 * 0.5 + 0.5))
    assert [lr_at(s, full) for s in (500, 59_999, 60_000, 80_000)] == \
        pytest.approx([0.02, 0.02, 0.002, 0.0002])


@pytest.mark.parametrize("overrides, division, message", [
    ({"variant": "r99-fpn"}, "open", "variant must be one of r50-fpn, r26-fpn-lite"),
    ({"variant": "r26-fpn-lite"}, "closed", "closed division: variant may not be changed"),
    ({"grad_clip_norm": "5"}, "closed", "closed division: grad_clip_norm may not be changed"),
    ({"backbone_sha256": "abc"}, "open", "backbone_sha256 must be 64 lower-case hex digits"),
    ({"decay_steps": "80000,60000"}, "open", "decay_steps must increase"),
    ({"min_size_px": "100000"}, "open", "at most 4,096"),
])
def test_bad_configs_are_one_line(overrides, division, message):
    with pytest.raises(ConfigError) as err:
        SPEC.make_config("full", overrides, division)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_both_aps_must_meet_their_targets():
    target = target_for("maskrcnn", "full")
    assert target.metric == "min(bbox_map/0.377,segm_map/0.339)" and target.value == 1.0
    assert target.as_dict() == {"metric": target.metric, "value": 1.0, "direction": "max",
                                "source": target.source}          # the wire's four fields
    cases = [((0.377, 0.339), True), ((0.50, 0.338), False), ((0.376, 0.60), False),
             ((0.40, 0.35), True)]
    for (box, mask), expected in cases:
        values = {"bbox_map": box, "segm_map": mask}
        assert reached(target, joint_quality(target, values)) is expected, values
        assert all(parts_reached(target, values).values()) is expected
    nan = float("nan")
    assert not reached(target, joint_quality(target, {"bbox_map": 0.9, "segm_map": nan}))
    assert not reached(target, joint_quality(target, {"bbox_map": nan, "segm_map": 0.9}))
    with pytest.raises(ValueError, match="no value for segm_map"):
        joint_quality(target, {"bbox_map": 0.5})
    smoke = target_for("maskrcnn", "smoke")
    assert smoke.metric.startswith("min(bbox_map/") and "not an MLPerf target" in smoke.source


# -- the synthetic COCO and the dataset identity ---------------------------------------------------

def test_synthetic_coco_is_the_real_format_and_seeded(tmp_path):
    from references.maskrcnn import coco, synthetic

    root = synthetic.write(tmp_path / "a", 6, 3, seed=5)
    train = coco.CocoInstances(root, "train", min_size_px=None)
    assert train.category_ids == [3, 7, 11] and len(train) == 6
    image, target = train[0]
    assert image.shape[0] == 3 and 96 <= image.shape[1] <= 128 and 96 <= image.shape[2] <= 128
    assert 1 <= len(target["boxes"]) <= 3 and target["masks"].shape[1:] == image.shape[1:]
    for box, mask in zip(target["boxes"], target["masks"]):     # the polygon fills its box
        x1, y1, x2, y2 = box.round().int().tolist()
        assert mask.sum() > 0.4 * (x2 - x1) * (y2 - y1)
        assert mask[y1:y2, x1:x2].sum() == mask.sum()
    val = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    assert len(val["images"]) == 3 and {c["id"] for c in val["categories"]} == {3, 7, 11}
    again = synthetic.write(tmp_path / "b", 6, 3, seed=5)
    for path in root.rglob("*.*"):
        assert path.read_bytes() == (again / path.relative_to(root)).read_bytes(), path


def test_coco_2017_is_identified_by_its_counts(tmp_path):
    def index(images, annotations):
        return {"images": [None] * images, "annotations": [None] * annotations}

    real = identity.verdict(index(118_287, 860_001), index(5_000, 36_781), tmp_path / "coco")
    assert real.is_mlperf and real.name == "coco2017"
    assert datasets.TABLE["coco2017"].counts == COCO_2017
    datasets.require_mlperf(real, "maskrcnn", "full", "closed")           # no error
    other = identity.verdict(index(4, 5), index(4, 5), tmp_path / "coco")
    assert not other.is_mlperf and "NOT the MLPerf dataset" in other.label
    with pytest.raises(DatasetError, match=r"not coco2017 \(COCO 2017 .*--division open"):
        datasets.require_mlperf(other, "maskrcnn", "full", "closed")


@pytest.mark.parametrize("breakage, message", [
    ("train_json", "annotations/instances_train2017.json is missing"),
    ("val_images", "val2017/ is missing: the val images of instances_val2017.json"),
    ("no_folder", "is missing: expected the COCO 2017 folder"),
])
def test_check_data_dir_names_what_is_missing(tmp_path, breakage, message):
    root = write_coco(tmp_path / "coco")
    if breakage == "train_json":
        (root / "annotations" / "instances_train2017.json").unlink()
    elif breakage == "val_images":
        for f in (root / "val2017").iterdir():
            f.unlink()
        (root / "val2017").rmdir()
    else:
        root = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=message) as err:
        check_data_dir(SPEC.make_config("reduced"), root)
    assert "\n" not in str(err.value)
    check_data_dir(SPEC.make_config("smoke"), None)                       # needs no data


# -- runs through the CLI ------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--mode", "reduced", "--data", "EMPTY"], "annotations/instances_train2017.json is missing"),
    (["--mode", "reduced"], "--data is required for COCO"),
    (["--mode", "full", "--data", "COCO"], "error: maskrcnn: this is not coco2017"),
    (["--mode", "smoke", "--set", "variant=r18-fpn"], "variant must be one of"),
    (["--mode", "reduced", "--data", "COCO", "--set", "backbone_checkpoint=/nope/r50.pt"],
     "backbone checkpoint /nope/r50.pt is missing"),
])
def test_user_errors_are_one_line(references_cli, tmp_path, args, message):
    root = write_coco(tmp_path / "coco")
    (tmp_path / "empty").mkdir()
    swap = {"COCO": str(root), "EMPTY": str(tmp_path / "empty")}
    run = references_cli("run", "maskrcnn", *[swap.get(a, a) for a in args])
    assert run.code == 2 and run.stdout == "", run.stderr[-3000:]
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: ") and message in run.stderr
    assert not (run.out / "result.json").exists()


@pytest.mark.integration
def test_smoke_reaches_its_target_and_passes_the_0_6_0_checker(references_cli):
    run = references_cli("run", "maskrcnn", "--mode", "smoke", timeout=300)
    assert run.code == 0, run.stderr[-3000:]
    result = run.result
    target = target_for("maskrcnn", "smoke")
    assert result["reached_target"] and result["quality"] >= 1.0
    assert result["target"] == target.as_dict() and result["time_to_train_s"] is None
    assert "FROM SCRATCH" in result["dataset"] and result["config"]["backbone_sha256"] is None
    accuracies = [e for e in run.events if e["key"] == "eval_accuracy"]
    last = accuracies[-1]["value"]
    assert set(last) == {"BBOX", "SEGM"}
    assert last["BBOX"] >= dict(target.parts)["bbox_map"]
    assert last["SEGM"] >= dict(target.parts)["segm_map"]
    scores = json.loads((run.out / "coco_eval.json").read_text())
    assert [s["epoch"] for s in scores] == list(range(1, result["epochs"] + 1))
    assert scores[-1]["bbox_map"] == last["BBOX"] and all(scores[-1]["met"].values())
    assert result["quality_parts"] == {"bbox_map": last["BBOX"], "segm_map": last["SEGM"]}
    assert "Average Precision" in scores[-1]["cocoeval"]["segm"]
    keys = {e["key"] for e in run.events}
    assert {"opt_learning_rate_warmup_factor", "num_image_candidates",
            "opt_gradient_clip_norm", "mlperf_edge_learning_rate_scaling"} <= keys
    (proc,) = check("maskrcnn", run.out)
    assert proc.returncode == 0 and "SUCCESS" in proc.stderr, proc.stderr[-3000:]
    assert "training_0.6.0/maskrcnn.yaml" in proc.stderr


@pytest.mark.integration
def test_reduced_run_on_a_tiny_coco_with_a_resnet_checkpoint(references_cli, tmp_path):
    # The backbone is what our ResNet reference wrote: one smoke epoch of ResNet-14 at width
    # 16 (the tiny variant's body), kept with save_checkpoint=true.
    resnet = references_cli("run", "resnet", "--mode", "smoke", "--set", "arch=resnet14",
                            "--set", "base_width=16", "--set", "max_epochs=1",
                            "--set", "save_checkpoint=true")
    assert resnet.code == 0, resnet.stderr[-3000:]
    checkpoint = resnet.out / "checkpoint.pt"
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert f"checkpoint: {checkpoint}" in resnet.stderr and digest in resnet.stderr
    root = write_coco(tmp_path / "coco")
    args = ("run", "maskrcnn", "--mode", "reduced", "--data", str(root),
            "--set", "variant=r14-fpn-tiny", "--set", f"backbone_checkpoint={checkpoint}",
            "--set", "min_size_px=64", "--set", "batch_size=1", "--set", "max_epochs=2",
            "--set", "workers=0", "--max-steps", "2")
    run = references_cli(*args)
    assert run.code == 0, run.stderr[-3000:]
    result = run.result
    assert result["stop_reason"] == "max_steps" and result["samples_trained"] == 2
    assert result["time_to_train_s"] is None and result["projection"] is None
    assert "NOT the MLPerf dataset" in result["dataset"] and "no projection" in run.stderr
    assert digest in result["dataset"] and result["config"]["backbone_sha256"] == digest
    init = next(e for e in run.events if e["key"] == "mlperf_edge_backbone_init")
    assert digest in init["value"]
    scores = json.loads((run.out / "coco_eval.json").read_text())
    assert [s["epoch"] for s in scores] == [1]                  # evaluated after epoch 1

    own = references_cli(*args, "--set", "epochs_to_converge=3")
    projection = own.result["projection"]
    assert projection["kind"] == "projection" and "NOT the reference's" in projection["basis"]
    assert projection["time_to_train_s"] == pytest.approx(3 * own.result["epoch_time_s"])

    # A relative path is under the data root (the folder holding coco/), as a job names one.
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "r14.pt").write_bytes(checkpoint.read_bytes())
    args = tuple("backbone_checkpoint=checkpoints/r14.pt" if a.startswith("backbone_checkpoint=")
                 else a for a in args)
    pinned = references_cli(*args, "--set", f"backbone_sha256={'0' * 64}")
    assert pinned.code == 2 and pinned.stdout == "" and pinned.stderr.count("\n") == 1
    assert f"has sha256 {digest}, but backbone_sha256 expects" in pinned.stderr
