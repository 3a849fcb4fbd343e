"""ResNet: the v1.5 model, the reference's schedule and transforms, the ILSVRC2012 folder
layout and its errors, and runs through the CLI checked by the real MLPerf compliance checker."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from references import registry
from references.common.errors import DatasetError
from references.compliance import check
from references.resnet import data as rdata
from references.resnet.model import ResNet
from references.resnet.train import lr_at
from tests.references.conftest import WNIDS, write_imagenet

TINY = ["--division", "open", "--set", "arch=resnet14", "--set", "base_width=8",
        "--set", "workers=0"]


# -- model and schedule ---------------------------------------------------------------------------

def test_resnet50_v15_has_the_reference_shape():
    model = ResNet("resnet50", 1000)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032   # ResNet-50's count
    first = model.stages[1][0]                     # the first downsampling bottleneck
    assert first.reduce[0].stride == (1, 1) and first.conv[0].stride == (2, 2)   # v1.5
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
    assert model.describe() == "ResNet-50 v1.5"
    small = ResNet("resnet14", 4, base_width=8)
    assert small.describe().startswith("ResNet-14 v1.5 (base width 8")
    assert len(small.stages[2]) == 1 and len(model.stages[2]) == 6


def test_initialisation_follows_the_v05_reference():
    """Convolutions: TF variance_scaling(1, fan_in, truncated_normal) -- std sqrt(1/fan_in)
    after a cut at 2 sigma; classifier: Glorot-uniform, zero bias (tf.layers.dense defaults)."""
    import math

    from references.resnet.model import TRUNCATED_STD

    torch.manual_seed(0)
    model = ResNet("resnet50", 1000)
    for conv in (model.stem[0][0], model.stages[3][0].conv[0], model.stages[2][5].expand[0]):
        w = conv.weight
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        assert w.std().item() == pytest.approx(math.sqrt(1 / fan_in), rel=0.03)
        assert w.abs().max().item() <= 2 * math.sqrt(1 / fan_in) / TRUNCATED_STD + 1e-6
        assert abs(w.mean().item()) < 0.05 * math.sqrt(1 / fan_in)
    limit = math.sqrt(6 / (2048 + 1000))                   # Glorot-uniform bound
    assert model.fc.weight.abs().max().item() <= limit
    assert model.fc.weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    assert torch.count_nonzero(model.fc.bias) == 0
    bn = model.stages[0][0].reduce[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_schedule_warms_up_then_steps_down():
    cfg = registry.get("resnet").make_config("full", {"batch_size": "256"})
    per_epoch = 100
    assert lr_at(0, cfg, per_epoch) == 0.0
    assert lr_at(250, cfg, per_epoch) == pytest.approx(0.128 / 2)            # half way up
    assert lr_at(500, cfg, per_epoch) == pytest.approx(0.128)                # peak at epoch 5
    assert lr_at(3000, cfg, per_epoch) == pytest.approx(0.0128)              # epoch 30
    assert lr_at(8500, cfg, per_epoch) == pytest.approx(0.128e-3)            # after epoch 80
    assert lr_at(500, registry.get("resnet").make_config("full"), per_epoch) == \
        pytest.approx(0.128 * 64 / 256)                                      # linear scaling


def test_closed_division_allows_only_the_tunable_hyperparameters():
    spec = registry.get("resnet")
    spec.make_config("full", {"batch_size": "128", "warmup_epochs": "2", "max_steps": "5"})
    with pytest.raises(Exception, match="closed division: arch may not be changed"):
        spec.make_config("full", {"arch": "resnet14"})
    assert spec.make_config("full", {"arch": "resnet14"}, "open").arch == "resnet14"
    assert spec.make_config("reduced", {"arch": "resnet14"}).arch == "resnet14"   # open default
    with pytest.raises(Exception, match="open division by definition"):
        spec.make_config("smoke", {}, "closed")


# -- transforms ----------------------------------------------------------------------------------

def test_transforms_give_the_reference_sizes_and_mean_subtraction(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (300, 200), (123, 117, 104))
    crop = rdata.random_resized_crop(img, 224, random.Random(0))
    assert crop.size == (224, 224)
    center = rdata.resize_center_crop(img, 256, 224)
    assert center.size == (224, 224)
    array = rdata.to_array(center)
    assert array.shape == (3, 224, 224) and abs(array).max() < 1.0     # means subtracted
    striped = Image.new("RGB", (4, 1))
    striped.putpixel((0, 0), (255, 0, 0))
    assert rdata.to_array(striped, flip=True)[0, 0, -1] == pytest.approx(255 - 123.68)


# -- the folder layout ----------------------------------------------------------------------------

@pytest.mark.parametrize("flat, labels_file", [(False, None), (True, "LOC_val_solution.csv"),
                                               (True, "val_labels.txt")])
def test_scan_reads_class_folders_and_flat_val(tmp_path, flat, labels_file):
    root = write_imagenet(tmp_path / "imagenet", flat_val=flat,
                          labels_file=labels_file or "LOC_val_solution.csv")
    wnids, train, val = rdata.scan(root)
    assert wnids == list(WNIDS) and len(train) == 12 and len(val) == 6
    assert sorted(val.labels) == [0, 0, 1, 1, 2, 2]
    for path, label in zip(val.files, val.labels):
        # the fixture colours each image by its class: the label must match the file's class
        r, g, b = rdata.decode(path).resize((1, 1)).getpixel((0, 0))
        assert (r, g, b).index(max(r, g, b)) == label


@pytest.mark.parametrize("breakage, message", [
    ("empty_train", "is empty: expected one folder of JPEGs per class"),
    ("empty_class", "holds no .JPEG images"),
    ("val_class_missing", "is a class folder with no train/n09999999"),
    ("no_labels", "has no labels file"),
    ("no_val", "val is missing"),
])
def test_bad_layouts_name_what_is_wrong(tmp_path, breakage, message):
    flat = breakage == "no_labels"
    root = write_imagenet(tmp_path / "imagenet", flat_val=flat)
    if breakage == "empty_train":
        for folder in (root / "train").iterdir():
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
    elif breakage == "empty_class":
        for f in (root / "train" / WNIDS[1]).iterdir():
            f.unlink()
    elif breakage == "val_class_missing":
        (root / "val" / "n09999999").mkdir()
    elif breakage == "no_labels":
        (root / "LOC_val_solution.csv").unlink()
    elif breakage == "no_val":
        for f in (root / "val").rglob("*.JPEG"):
            f.unlink()
        for d in sorted((root / "val").iterdir()):
            d.rmdir()
        (root / "val").rmdir()
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")):
        rdata.scan(root)


def test_unreadable_jpeg_is_named_or_skipped(tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    bad = root / "train" / WNIDS[0] / "broken.JPEG"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match="unreadable image .*broken.JPEG"):
        rdata.decode(bad)
    _, train, _ = rdata.scan(root)
    index = train.files.index(bad)
    strict = registry.get("resnet").make_config("reduced", {"workers": "0"})
    with pytest.raises(DatasetError, match="broken.JPEG"):
        rdata.ImageDataset(train, True, strict, seed=1)[index]
    lenient = registry.get("resnet").make_config("reduced", {"skip_bad_images": "true"})
    dataset = rdata.ImageDataset(train, True, lenient, seed=1)
    assert dataset[index] is None
    good = next(i for i in range(len(train)) if i != index)
    batch = rdata.collate([dataset[index], dataset[good]])
    assert batch[0].shape == (1, 3, 224, 224) and batch[1].tolist() == [train.labels[good]]
    assert rdata.collate([None]) is None


# -- through the CLI, checked by the real compliance checker ------------------------------------

def assert_checker_passes(out: Path, benchmark: str = "resnet") -> None:
    for proc in check(benchmark, out):
        assert proc.returncode == 0 and "SUCCESS" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.integration
def test_smoke_reaches_its_target_and_passes_the_v06_checker(references_cli):
    run = references_cli("run", "resnet", "--mode", "smoke", "--seed", "3")
    assert run.code == 0, run.stderr
    result = run.result
    assert result["reached_target"] and result["stop_reason"] == "target_reached"
    assert result["quality"] >= result["target"]["value"] == 0.90
    assert result["division"] == "open" and result["time_to_train_s"] is None
    assert result["time_to_target_s"] == result["timed_window_s"] > 0
    assert "ResNet-14 v1.5" in run.stderr and "synthetic" in result["dataset"]
    keys = run.keys()
    for key in ("opt_learning_rate_warmup_epochs", "opt_learning_rate_decay_boundary_epochs",
                "model_bn_span", "opt_base_learning_rate", "cache_clear"):
        assert keys.count(key) == 1, key
    assert_checker_passes(run.out)


@pytest.mark.integration
def test_reduced_run_on_ilsvrc_folders_reports_a_projection(references_cli, tmp_path):
    root = write_imagenet(tmp_path / "imagenet", flat_val=True)
    run = references_cli("run", "resnet", "--mode", "reduced", "--data", str(root), *TINY,
                         "--set", "batch_size=4", "--max-steps", "2",
                         "--set", "epochs_to_converge=3")
    assert run.code == 0, run.stderr
    result = run.result
    assert result["stop_reason"] == "max_steps" and result["samples_trained"] == 8
    assert result["time_to_train_s"] is None and result["quality"] is None
    assert result["dataset"].startswith("ILSVRC-style folders in imagenet/ -- NOT the MLPerf")
    assert "imagenet has 1,281,167 train images" in result["dataset"]
    projection = result["projection"]
    assert projection["kind"] == "projection" and projection["epochs_to_converge"] == 3
    assert projection["time_to_train_s"] == pytest.approx(3 * result["epoch_time_s"])
    assert "set for this run, NOT the reference's figure (90 epochs" in projection["basis"]
    cache = next(e for e in run.events if e["key"] == "cache_clear")
    assert cache["value"] is True and "18 dataset file(s)" in cache["metadata"]["method"]


@pytest.mark.integration
def test_full_run_on_a_learnable_fixture_passes_the_checker(references_cli, tmp_path):
    root = write_imagenet(tmp_path / "imagenet", per_class=6)
    run = references_cli("run", "resnet", "--mode", "full", "--data", str(root), *TINY,
                         "--set", "image_size=32", "--set", "resize_size=36",
                         "--set", "batch_size=6", "--set", "base_learning_rate=0.5",
                         "--set", "warmup_epochs=1", "--set", "max_epochs=30")
    assert run.code == 0, run.stderr
    result = run.result
    assert result["reached_target"], run.stderr
    assert result["time_to_train_s"] == result["timed_window_s"] and result["division"] == "open"
    assert_checker_passes(run.out)


@pytest.mark.integration
def test_unreadable_jpeg_fails_the_run_in_one_line(references_cli, tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    (root / "train" / WNIDS[2] / "broken.JPEG").write_bytes(b"\xff\xd8 truncated")
    run = references_cli("run", "resnet", "--mode", "reduced", "--data", str(root),
                         "--division", "open", "--set", "arch=resnet14", "--set", "base_width=8",
                         "--set", "batch_size=32")
    assert run.code == 2 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unreadable image ") and "broken.JPEG" in last
    assert '"status": "aborted"' in run.stdout.splitlines()[-1]


# -- the numpy path every runtime shares -----------------------------------------------------

@pytest.mark.parametrize("size", [4, 7, 32, 224])
def test_the_numpy_upsample_is_torchs_bilinear(size):
    x = np.random.default_rng(size).standard_normal((2, 3, 4, 4))
    want = torch.nn.functional.interpolate(torch.from_numpy(x), size=(size, size),
                                           mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(rdata.upsample_bilinear(x, size), want, atol=1e-12)


def test_synthetic_images_are_the_same_for_a_seed_and_differ_across_seeds():
    cfg = registry.get("resnet").make_config("smoke", {})
    a, b, c = rdata.synthetic(cfg, 1), rdata.synthetic(cfg, 1), rdata.synthetic(cfg, 2)
    assert a.train_images.shape == (512, 3, 32, 32) and a.train_images.dtype == np.float32
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert not np.array_equal(a.train_images, c.train_images)
    assert set(a.train_labels.tolist()) == {0, 1, 2, 3}


def test_array_batches_decode_in_order_and_leave_out_unreadable_images(tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    (root / "train" / WNIDS[0] / "broken.JPEG").write_bytes(b"not a jpeg")
    _, train, _ = rdata.scan(root)
    cfg = registry.get("resnet").make_config(
        "reduced", {"image_size": "32", "resize_size": "40", "skip_bad_images": "true"})
    dataset = rdata.ImageDataset(train, False, cfg, seed=1)
    order = np.random.default_rng(0).permutation(len(train))
    batches = list(rdata.array_batches(dataset, 5, order, threads=2))
    labels = np.concatenate([y for _, y in batches])
    broken = train.files.index(root / "train" / WNIDS[0] / "broken.JPEG")
    assert labels.tolist() == [train.labels[i] for i in order if i != broken]
    assert sum(len(y) for _, y in batches) == len(train) - 1
    first = batches[0][0]
    assert first.dtype == np.float32 and first.shape[1:] == (3, 32, 32)
    # the same arrays torch's DataLoader path gets for those images
    first_good = next(int(i) for i in order if i != broken)
    np.testing.assert_array_equal(first[0], dataset[first_good][0])
    strict = rdata.ImageDataset(train, False, registry.get("resnet").make_config(
        "reduced", {"image_size": "32", "resize_size": "40"}), seed=1)
    with pytest.raises(DatasetError, match="broken.JPEG"):
        list(rdata.array_batches(strict, 5, None, threads=2))
