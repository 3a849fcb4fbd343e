"""COCO for Mask R-CNN on a tiny COCO written in the real format: annotations/instances_*.json
(images, annotations, categories) with polygon, compressed-RLE and crowd uncompressed-RLE
segmentations, non-contiguous category ids, and PNG/JPEG images in train2017/ and val2017/."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from references.common.errors import DatasetError
from references.maskrcnn import coco

# Image 1 (40 x 30 PNG): a rectangle polygon (5, 4)-(25, 14), category 1, and a crowd region
# rows 20..27 x columns 30..37 as uncompressed RLE, category 3.
# Image 2 (24 x 32 JPEG): compressed RLE rows 10..19 x columns 4..11, category 90, and a
# rectangle polygon (14, 2)-(22, 8), category 3.
# Image 3 (20 x 20 JPEG): no annotation. Image 4 (16 x 12 PNG): only a 1-pixel-wide polygon.
RECT_1 = [5.0, 4.0, 25.0, 4.0, 25.0, 14.0, 5.0, 14.0]
RECT_2 = [14.0, 2.0, 22.0, 2.0, 22.0, 8.0, 14.0, 8.0]
THIN_4 = [3.0, 3.0, 4.0, 3.0, 4.0, 8.0, 3.0, 8.0]


def block_mask(height: int, width: int, rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[rows, cols] = 1
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd encoding, by hand: run lengths of the column-major pixels, zeros first."""
    flat = mask.flatten(order="F")
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"counts": [int(c) for c in counts], "size": list(mask.shape)}


CROWD_MASK = block_mask(30, 40, slice(20, 28), slice(30, 38))
RLE_MASK = block_mask(32, 24, slice(10, 20), slice(4, 12))


def instances() -> dict:
    compressed = mask_utils.encode(np.asfortranarray(RLE_MASK))
    compressed["counts"] = compressed["counts"].decode("ascii")
    image = {"license": 1, "coco_url": "", "date_captured": "2013-11-14 16:28:13",
             "flickr_url": ""}
    return {
        "info": {"description": "tiny COCO", "version": "1.0", "year": 2017},
        "licenses": [{"id": 1, "name": "test", "url": ""}],
        "images": [
            {**image, "id": 1, "file_name": "000000000001.png", "width": 40, "height": 30},
            {**image, "id": 2, "file_name": "000000000002.jpg", "width": 24, "height": 32},
            {**image, "id": 3, "file_name": "000000000003.jpg", "width": 20, "height": 20},
            {**image, "id": 4, "file_name": "000000000004.png", "width": 16, "height": 12},
        ],
        "annotations": [
            {"id": 101, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 200.0,
             "bbox": [5.0, 4.0, 20.0, 10.0], "segmentation": [RECT_1]},
            {"id": 102, "image_id": 1, "category_id": 3, "iscrowd": 1, "area": 64.0,
             "bbox": [30.0, 20.0, 8.0, 8.0], "segmentation": uncompressed_rle(CROWD_MASK)},
            {"id": 201, "image_id": 2, "category_id": 90, "iscrowd": 0, "area": 80.0,
             "bbox": [4.0, 10.0, 8.0, 10.0], "segmentation": compressed},
            {"id": 202, "image_id": 2, "category_id": 3, "iscrowd": 0, "area": 48.0,
             "bbox": [14.0, 2.0, 8.0, 6.0], "segmentation": [RECT_2]},
            {"id": 401, "image_id": 4, "category_id": 1, "iscrowd": 0, "area": 5.0,
             "bbox": [3.0, 3.0, 1.0, 5.0], "segmentation": [THIN_4]},
        ],
        "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                       {"supercategory": "vehicle", "id": 3, "name": "car"},
                       {"supercategory": "indoor", "id": 90, "name": "toothbrush"}],
    }


def pixels(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_coco(root: Path, data: dict | None = None) -> Path:
    data = instances() if data is None else data
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in coco.SPLITS:
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
        folder = root / f"{split}2017"
        folder.mkdir(exist_ok=True)
        for i, img in enumerate(data["images"]):
            Image.fromarray(pixels(img["width"], img["height"], i)).save(folder / img["file_name"])
    return root


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "coco")


def extent(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of a mask's pixels, x2/y2 exclusive: comparable with a box."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# --------------------------------------------------------------------------------- loading

def test_training_split_skips_images_without_usable_annotations(root):
    train = coco.CocoInstances(root, "train", min_size_px=None)
    assert train.image_ids == [1, 2]          # 3 has none, 4 only a 1-pixel-wide box
    val = coco.CocoInstances(root, "val", min_size_px=None)
    assert val.image_ids == [1, 2, 3, 4] and not val.train and val.flip_prob == 0.0


def test_labels_are_contiguous_in_category_id_order(root):
    ds = coco.CocoInstances(root, "val", min_size_px=None)
    assert ds.category_ids == [1, 3, 90]
    assert ds.label_of == {1: 1, 3: 2, 90: 3}
    assert ds[1][1]["labels"].tolist() == [3, 2]           # categories 90 and 3


def test_polygon_target_and_image(root):
    ds = coco.CocoInstances(root, "train", min_size_px=None, flip_prob=0.0)
    image, target = ds[0]
    assert target["image_id"] == 1 and target["orig_size"] == (30, 40)
    assert image.dtype == torch.float32 and image.shape == (3, 30, 40)
    expected = torch.from_numpy(pixels(40, 30, 0)).permute(2, 0, 1).float() / 255
    assert torch.allclose(image, expected)                  # PNG: lossless
    assert target["boxes"].tolist() == [[5.0, 4.0, 25.0, 14.0]]
    assert target["boxes"].dtype == torch.float32 and target["labels"].tolist() == [1]
    masks = target["masks"]
    assert masks.dtype == torch.uint8 and masks.shape == (1, 30, 40)
    # The polygon (5, 4)-(25, 14) covers pixels x 5..24, y 4..13: 20 x 10.
    assert int(masks.sum()) == 200 and extent(masks[0]) == (5, 4, 25, 14)


def test_compressed_rle_and_second_polygon(root):
    image, target = coco.CocoInstances(root, "train", min_size_px=None, flip_prob=0.0)[1]
    assert image.shape == (3, 32, 24)
    masks = target["masks"]
    assert torch.equal(masks[0], torch.from_numpy(RLE_MASK))        # 10 x 8 = 80 pixels
    assert int(masks[1].sum()) == 8 * 6 and extent(masks[1]) == (14, 2, 22, 8)
    assert target["boxes"].tolist() == [[4.0, 10.0, 12.0, 20.0], [14.0, 2.0, 22.0, 8.0]]


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_crowd_is_no_target_but_stays_in_the_ground_truth(root):
    ds = coco.CocoInstances(root, "train", min_size_px=None, flip_prob=0.0)
    target = ds[0][1]
    assert len(target["labels"]) == 1 and target["masks"].shape[0] == 1
    assert target["crowd_boxes"].tolist() == [[30.0, 20.0, 38.0, 28.0]]
    crowd = ds.coco.anns[102]
    assert crowd["iscrowd"] == 1
    assert np.array_equal(ds.coco.annToMask(crowd), CROWD_MASK)    # uncompressed RLE decodes


# ----------------------------------------------------------------------- resize and flip

def test_resized_hw_as_the_reference():
    assert coco.resized_hw(480, 640, 800, 1333) == (800, 1066)
    assert coco.resized_hw(427, 640, 800, 1333) == (800, 1199)
    assert coco.resized_hw(500, 1500, 800, 1333) == (444, 1332)    # capped by the long side
    assert coco.resized_hw(800, 1000, 800, 1333) == (800, 1000)


def test_resize_scales_image_boxes_and_masks_together(root):
    image, target = coco.CocoInstances(root, "train", min_size_px=60, max_size_px=100,
                                       flip_prob=0.0)[0]
    assert image.shape == (3, 60, 80) and target["size"] == (60, 80)
    assert target["orig_size"] == (30, 40)
    assert target["boxes"].tolist() == [[10.0, 8.0, 50.0, 28.0]]
    assert target["crowd_boxes"].tolist() == [[60.0, 40.0, 76.0, 56.0]]
    assert target["masks"].shape == (1, 60, 80) and int(target["masks"].sum()) == 800
    assert extent(target["masks"][0]) == (10, 8, 50, 28)
    # The long side caps it: 40 -> 60 gives the short side 45, a scale of 1.5.
    image, target = coco.CocoInstances(root, "train", min_size_px=60, max_size_px=60,
                                       flip_prob=0.0)[0]
    assert image.shape == (3, 45, 60) and target["masks"].shape == (1, 45, 60)
    assert target["boxes"].tolist() == [[7.5, 6.0, 37.5, 21.0]]
    x1, y1, x2, y2 = extent(target["masks"][0])
    assert abs(x1 - 7.5) <= 1 and abs(y1 - 6) <= 1 and abs(x2 - 37.5) <= 1 and abs(y2 - 21) <= 1


def test_flip_mirrors_image_boxes_and_masks(root):
    plain = coco.CocoInstances(root, "train", min_size_px=60, max_size_px=100, flip_prob=0.0)
    flipped = coco.CocoInstances(root, "train", min_size_px=60, max_size_px=100, flip_prob=1.0)
    for index in range(len(plain)):
        image, target = plain[index]
        f_image, f_target = flipped[index]
        width = image.shape[-1]
        assert torch.equal(f_image, image.flip(-1))
        assert torch.equal(f_target["masks"], target["masks"].flip(-1))
        boxes = target["boxes"]
        mirrored = torch.stack((width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                                boxes[:, 3]), 1)
        assert torch.equal(f_target["boxes"], mirrored)
        assert f_target["labels"].tolist() == target["labels"].tolist()
    # The flipped rectangle still has its mask exactly inside its box.
    f_target = flipped[0][1]
    assert f_target["boxes"].tolist() == [[30.0, 8.0, 70.0, 28.0]]
    assert extent(f_target["masks"][0]) == (30, 8, 70, 28)


def test_flips_are_seeded_per_epoch_and_image(root):
    plain = coco.CocoInstances(root, "train", min_size_px=None, flip_prob=0.0)
    unflipped = [plain[i][1]["boxes"] for i in range(len(plain))]

    def flips(seed: int, epoch: int) -> tuple[bool, ...]:
        ds = coco.CocoInstances(root, "train", min_size_px=None, seed=seed)
        ds.set_epoch(epoch)
        return tuple(not torch.equal(ds[i][1]["boxes"], unflipped[i]) for i in range(len(ds)))

    runs = {(seed, epoch): flips(seed, epoch) for seed in range(3) for epoch in range(4)}
    assert runs[(0, 0)] == flips(0, 0) and runs[(2, 3)] == flips(2, 3)
    assert len(set(runs.values())) > 1                      # not one fixed pattern
    assert any(any(v) for v in runs.values()) and any(not all(v) for v in runs.values())


# ------------------------------------------------------------------------------- errors

def one_line_error(excinfo, *parts: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


def test_missing_annotations_file(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        coco.CocoInstances(tmp_path, "train")
    one_line_error(excinfo, str(tmp_path / "annotations" / "instances_train2017.json"),
                   "is missing")


def test_malformed_json(root):
    path = root / "annotations" / "instances_val2017.json"
    path.write_text('{"images": [\n  {"id": 1,, }\n')
    with pytest.raises(DatasetError) as excinfo:
        coco.CocoInstances(root, "val")
    one_line_error(excinfo, f"{path}:2:", "malformed JSON")


def test_not_an_instances_file(root):
    path = root / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError) as excinfo:
        coco.CocoInstances(root, "val")
    one_line_error(excinfo, str(path), "'annotations'")


def test_image_file_missing(root):
    (root / "train2017" / "000000000002.jpg").unlink()
    with pytest.raises(DatasetError) as excinfo:
        coco.CocoInstances(root, "train")
    one_line_error(excinfo, str(root / "train2017" / "000000000002.jpg"), "is missing",
                   "image 2")


def test_negative_bbox_width(tmp_path):
    data = instances()
    bad = copy.deepcopy(data)
    bad["annotations"][2]["bbox"] = [4.0, 10.0, -3.0, 10.0]
    root = write_coco(tmp_path / "coco", bad)
    with pytest.raises(DatasetError) as excinfo:
        coco.CocoInstances(root, "train")
    one_line_error(excinfo, str(root / "annotations" / "instances_train2017.json"),
                   "annotation 201", "negative width")


def test_undecodable_image(root):
    path = root / "train2017" / "000000000001.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is no image\n")
    ds = coco.CocoInstances(root, "train")                  # found at read time, not here
    with pytest.raises(DatasetError) as excinfo:
        ds[0]
    one_line_error(excinfo, str(path), "cannot decode image")


def test_image_size_must_match_the_annotations(root):
    path = root / "train2017" / "000000000001.png"
    Image.fromarray(pixels(41, 30, 0)).save(path)
    with pytest.raises(DatasetError) as excinfo:
        coco.CocoInstances(root, "train")[0]
    one_line_error(excinfo, str(path), "41x30", "40x30")


# ---------------------------------------------------------------------------- evaluation

def ground_truth_detections(ds: coco.CocoInstances) -> tuple[list[dict], list[torch.Tensor]]:
    detections, masks = [], []
    for index in range(len(ds)):
        target = ds[index][1]
        count = len(target["labels"])
        detections.append({"image_id": target["image_id"], "boxes": target["boxes"],
                           "labels": target["labels"],
                           "scores": torch.linspace(1.0, 0.5, count)})
        masks.append(target["masks"])
    return detections, masks


def test_evaluate_perfect_detections_score_one(root, capsys):
    ds = coco.CocoInstances(root, "val", min_size_px=None)
    detections, masks = ground_truth_detections(ds)
    summaries: dict[str, str] = {}
    ap = coco.evaluate(ds.coco, detections, masks, summaries)
    assert ap == {"bbox": pytest.approx(1.0), "segm": pytest.approx(1.0)}
    assert capsys.readouterr().out == ""                    # COCOeval's prints captured
    assert "Average Precision" in summaries["bbox"] and "Average Precision" in summaries["segm"]


def test_evaluate_ignores_detections_on_crowds(root):
    ds = coco.CocoInstances(root, "val", min_size_px=None)
    detections, masks = ground_truth_detections(ds)
    crowd = torch.from_numpy(CROWD_MASK)[None].float() * 0.9       # probabilities, > 0.5
    detections[0] = {**detections[0],
                     "boxes": torch.cat((detections[0]["boxes"],
                                         torch.tensor([[30.0, 20.0, 38.0, 28.0]]))),
                     "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.6, 0.99])}
    masks[0] = torch.cat((masks[0].float(), crowd))
    assert coco.evaluate(ds.coco, detections, masks) == {"bbox": pytest.approx(1.0),
                                                         "segm": pytest.approx(1.0)}
    # The same detection as category 1, which has no crowd there, is a false positive.
    detections[0]["labels"] = torch.tensor([1, 1])
    ap = coco.evaluate(ds.coco, detections, masks)
    assert ap["bbox"] < 0.99 and ap["segm"] < 0.99


def test_evaluate_shifted_detections_score_lower(root):
    ds = coco.CocoInstances(root, "val", min_size_px=None)
    detections, masks = ground_truth_detections(ds)
    shift = torch.tensor([3.0, 0.0, 3.0, 0.0])
    shifted = [{**d, "boxes": d["boxes"] + shift} for d in detections]
    rolled = [m.roll(3, dims=-1) for m in masks]
    ap = coco.evaluate(ds.coco, shifted, rolled)
    assert 0.0 <= ap["bbox"] < 0.9 and 0.0 <= ap["segm"] < 0.9
    no_detections = [{**d, "boxes": torch.zeros(0, 4), "labels": torch.zeros(0),
                      "scores": torch.zeros(0)} for d in detections]
    empty_masks = [torch.zeros((0, *m.shape[1:])) for m in masks]
    assert coco.evaluate(ds.coco, no_detections, empty_masks) == {"bbox": 0.0, "segm": 0.0}


def test_evaluate_rejects_masks_of_the_wrong_size(root):
    ds = coco.CocoInstances(root, "val", min_size_px=60, max_size_px=100)
    detections, masks = ground_truth_detections(ds)
    with pytest.raises(ValueError, match="original size"):
        coco.evaluate(ds.coco, detections, masks)
