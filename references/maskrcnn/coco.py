"""COCO 2017 instances as distributed, for Mask R-CNN: images with boxes and masks, and COCOeval.

    ROOT/annotations/instances_train2017.json    ROOT/train2017/<file_name>
    ROOT/annotations/instances_val2017.json      ROOT/val2017/<file_name>

pycocotools indexes the JSON and decodes every mask encoding COCO uses: polygons, uncompressed
RLE (crowd regions) and compressed RLE. The JSON is checked when the dataset is built, so that
a broken file is one DatasetError naming it, before anything is timed: a missing or malformed
annotations file, a bbox with negative width or height, an image file that is missing. An image
that cannot be decoded is reported when it is read.

As in torchvision's and the MLPerf reference's COCO readers:
- crowd regions (iscrowd=1) are no training targets (their boxes come along as ``crowd_boxes``
  for a matcher that wants to ignore proposals on them) and stay in the ground truth, where
  COCOeval ignores detections that fall on them;
- training skips images without an annotation, or whose boxes are all <= 1 pixel wide or high;
  evaluation keeps every image;
- category ids (1..90 with gaps) map to contiguous labels 1..K in id order; 0 is background.

Images are resized so the shorter side is ``min_size_px`` unless the longer would pass
``max_size_px`` (the reference's 800 / 1333), and flipped left-right with a seeded coin.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from references.common.errors import DatasetError

SPLITS = ("train", "val")
LAYOUT = ("annotations/instances_{train,val}2017.json with the images in train2017/ and "
          "val2017/")


def annotation_file(root: Path, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}2017.json"


def image_folder(root: Path, split: str) -> Path:
    return Path(root) / f"{split}2017"


# --------------------------------------------------------------------------- the JSON index

def load_coco(path: Path) -> COCO:
    """The annotations file indexed by pycocotools; DatasetError naming the file if it is
    missing, not JSON, or not a COCO instances file (see ``_check_index``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} is missing: expected the COCO layout {LAYOUT}")
    try:
        with path.open("rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg} "
                           f"(column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable: {exc.__class__.__name__}: {exc}") from None
    _check_index(data, path)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):   # "creating index... index created!"
        coco.createIndex()
    return coco


def _check_index(data: Any, path: Path) -> None:
    """DatasetError unless ``data`` holds images, annotations and categories that fit together,
    each annotation with a segmentation and a bbox [x, y, w, h] with w, h >= 0."""
    if not isinstance(data, dict) or not all(
            isinstance(data.get(key), list) for key in ("images", "annotations", "categories")):
        raise DatasetError(f"{path}: not a COCO instances file: expected an object with "
                           "'images', 'annotations' and 'categories' lists")
    image_ids = set()
    for img in data["images"]:
        for key in ("file_name", "width", "height"):
            _field(img, key, path, "image")
        image_ids.add(_field(img, "id", path, "image"))
    category_ids = {_field(cat, "id", path, "category") for cat in data["categories"]}
    for ann in data["annotations"]:
        ann_id = _field(ann, "id", path, "annotation")
        where = f"{path}: annotation {ann_id}"
        for key in ("image_id", "category_id", "bbox", "segmentation"):
            _field(ann, key, path, f"annotation {ann_id}")
        if ann["image_id"] not in image_ids:
            raise DatasetError(f"{where} names image {ann['image_id']}, which is not in 'images'")
        if ann["category_id"] not in category_ids:
            raise DatasetError(f"{where} names category {ann['category_id']}, which is not in "
                               "'categories'")
        bbox = ann["bbox"]
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) for v in bbox)):
            raise DatasetError(f"{where} has bbox {bbox!r}: expected [x, y, width, height]")
        if bbox[2] < 0 or bbox[3] < 0:
            side = "width" if bbox[2] < 0 else "height"
            raise DatasetError(f"{where} (image {ann['image_id']}) has bbox {bbox} with negative "
                               f"{side}")


def _field(entry: Any, key: str, path: Path, what: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{path}: {what} entry {str(entry)[:80]} has no {key!r}")
    return entry[key]


def category_ids(coco: COCO) -> list[int]:
    """COCO category ids in label order: label L (1..K) is category_ids(coco)[L - 1]."""
    return sorted(cat["id"] for cat in coco.dataset["categories"])


def training_image_ids(coco: COCO) -> list[int]:
    """Images worth a training step: with an annotation (crowds count) whose box is more than
    one pixel wide and high (torchvision's _coco_remove_images_without_annotations)."""
    return [image_id for image_id in sorted(coco.imgs)
            if any(a["bbox"][2] > 1 and a["bbox"][3] > 1 for a in coco.imgToAnns[image_id])]


def check_image_files(coco: COCO, folder: Path, image_ids: Sequence[int], ann_file: Path) -> None:
    """DatasetError naming the first image of ``image_ids`` whose file is not in ``folder``."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} is missing: expected the COCO layout {LAYOUT}")
    present = set(os.listdir(folder))
    for image_id in image_ids:
        name = coco.imgs[image_id]["file_name"]
        if name not in present and not (folder / name).is_file():
            count = len(coco.imgToAnns[image_id])
            raise DatasetError(f"{folder / name} is missing: image {image_id} of {ann_file} "
                               f"({count} annotation(s))")


# ----------------------------------------------------------------------------- the dataset

def resized_hw(height: int, width: int, min_size_px: int, max_size_px: int) -> tuple[int, int]:
    """(height, width) with the shorter side ``min_size_px``, less if the longer side would
    pass ``max_size_px`` (maskrcnn-benchmark's Resize.get_size, as the MLPerf reference)."""
    size = min_size_px
    short, long = float(min(height, width)), float(max(height, width))
    if long / short * size > max_size_px:
        size = round(max_size_px * short / long)
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def read_image(path: Path, width: int, height: int):
    """The image as RGB (Pillow); DatasetError naming the file if it cannot be decoded or its
    size is not the one the annotations give (the masks would not fit it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        message = " ".join(str(exc).split())
        raise DatasetError(f"{path}: cannot decode image: {exc.__class__.__name__}: "
                           f"{message}") from None
    if rgb.size != (width, height):
        raise DatasetError(f"{path}: image is {rgb.size[0]}x{rgb.size[1]} pixels but the "
                           f"annotations give {width}x{height}")
    return rgb


class CocoInstances(torch.utils.data.Dataset):
    """COCO images with their instances: item -> (image, target).

    image: float32 [3, H, W] in 0..1, resized (and maybe flipped). target: ``boxes`` float32
    [k, 4] (x1, y1, x2, y2 in the resized image's pixels), ``labels`` int64 [k] (1..K),
    ``masks`` uint8 [k, H, W], ``crowd_boxes`` float32 [c, 4], ``image_id`` int,
    ``orig_size`` (height, width) as in the file, ``size`` (height, width) as returned.
    ``train`` (default: the train split) skips images without annotations and flips with
    probability ``flip_prob`` (default 0.5 in training, else 0); ``min_size_px=None`` keeps
    the original size.
    """

    def __init__(self, root: Path, split: str = "train", *, train: bool | None = None,
                 min_size_px: int | None = 800, max_size_px: int = 1333,
                 flip_prob: float | None = None, seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: expected one of {SPLITS}")
        self.train = split == "train" if train is None else train
        self.ann_file = annotation_file(root, split)
        self.image_dir = image_folder(root, split)
        self.coco = load_coco(self.ann_file)
        self.category_ids = category_ids(self.coco)
        self.label_of = {cat: i + 1 for i, cat in enumerate(self.category_ids)}
        self.image_ids = training_image_ids(self.coco) if self.train else sorted(self.coco.imgs)
        check_image_files(self.coco, self.image_dir, self.image_ids, self.ann_file)
        self.min_size_px, self.max_size_px = min_size_px, max_size_px
        self.flip_prob = (0.5 if self.train else 0.0) if flip_prob is None else flip_prob
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Flips are drawn per (seed, epoch, index): the same in any worker, new each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.image_ids)

    def _flips(self, index: int) -> bool:
        if self.flip_prob <= 0:
            return False
        return random.Random(hash((self.seed, self.epoch, index))).random() < self.flip_prob

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        height, width = int(info["height"]), int(info["width"])
        img = read_image(self.image_dir / info["file_name"], width, height)
        anns = self.coco.imgToAnns[image_id]
        objects = [a for a in anns if not a.get("iscrowd", 0)]
        crowds = [a for a in anns if a.get("iscrowd", 0)]
        boxes = _xyxy(objects, height, width)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])   # degenerate: dropped
        objects = [a for a, k in zip(objects, keep.tolist()) if k]
        boxes = boxes[keep]
        masks = self._masks(objects, height, width)
        labels = torch.tensor([self.label_of[a["category_id"]] for a in objects],
                              dtype=torch.int64)
        crowd_boxes = _xyxy(crowds, height, width)

        out_h, out_w = (height, width) if self.min_size_px is None else \
            resized_hw(height, width, self.min_size_px, self.max_size_px)
        if (out_h, out_w) != (height, width):
            from PIL import Image

            img = img.resize((out_w, out_h), Image.BILINEAR)
            scale = torch.tensor([out_w / width, out_h / height] * 2)
            boxes, crowd_boxes = boxes * scale, crowd_boxes * scale
            masks = _resize_nearest(masks, out_h, out_w)
        image = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        image = image.float().div_(255.0)
        if self._flips(index):
            image, masks = image.flip(-1), masks.flip(-1)
            boxes, crowd_boxes = _flip_boxes(boxes, out_w), _flip_boxes(crowd_boxes, out_w)
        target = {"boxes": boxes, "labels": labels, "masks": masks, "crowd_boxes": crowd_boxes,
                  "image_id": int(image_id), "orig_size": (height, width),
                  "size": (out_h, out_w)}
        return image, target

    def _masks(self, objects: list[dict], height: int, width: int) -> Tensor:
        """uint8 [k, H, W] from polygons or RLE; DatasetError naming an undecodable one."""
        masks = np.zeros((len(objects), height, width), dtype=np.uint8)
        with _quiet_pycocotools():
            for i, ann in enumerate(objects):
                try:
                    masks[i] = self.coco.annToMask(ann)
                except (TypeError, ValueError, KeyError, IndexError) as exc:
                    raise DatasetError(f"{self.ann_file}: annotation {ann['id']} (image "
                                       f"{ann['image_id']}): cannot decode its segmentation: "
                                       f"{exc.__class__.__name__}: {exc}") from None
        return torch.from_numpy(masks)


def collate(batch: Sequence[tuple[Tensor, dict]]) -> tuple[tuple[Tensor, ...], tuple[dict, ...]]:
    """A batch as (images, targets): images differ in size, so they are not stacked here."""
    images, targets = zip(*batch)
    return tuple(images), tuple(targets)


@contextlib.contextmanager
def _quiet_pycocotools() -> Iterator[None]:
    """pycocotools 2.0.11's Cython decoder trips numpy 2's __array__(copy=...) deprecation on
    every mask; the masks are right, so that one warning is silenced around its calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        yield


def _xyxy(anns: Sequence[Mapping], height: int, width: int) -> Tensor:
    """COCO [x, y, w, h] boxes as float32 [k, 4] (x1, y1, x2, y2), clamped into the image."""
    boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(min=0, max=width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(min=0, max=height)
    return boxes


def _flip_boxes(boxes: Tensor, width: int) -> Tensor:
    return torch.stack((width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]), 1)


def _resize_nearest(masks: Tensor, out_h: int, out_w: int) -> Tensor:
    """uint8 masks [k, h, w] -> [k, out_h, out_w], each output pixel taking the input pixel
    under its centre (F.interpolate's "nearest-exact", without a float copy of the masks)."""
    in_h, in_w = masks.shape[-2:]
    rows = ((torch.arange(out_h, dtype=torch.float64) + 0.5) * in_h / out_h).long()
    cols = ((torch.arange(out_w, dtype=torch.float64) + 0.5) * in_w / out_w).long()
    return masks[:, rows.clamp(max=in_h - 1)][:, :, cols.clamp(max=in_w - 1)]


# ------------------------------------------------------------------------------ evaluation

def evaluate(coco_gt: COCO, detections: Sequence[Mapping[str, Any]],
             masks: Sequence[Tensor | np.ndarray],
             summaries: dict[str, str] | None = None) -> dict[str, float]:
    """{"bbox": AP, "segm": AP}: COCOeval's AP@[.50:.05:.95], all areas, 100 detections.

    ``detections`` has one entry per image scored: ``image_id``, ``boxes`` [n, 4] (x1, y1, x2,
    y2 in the original image's pixels), ``scores`` [n] and ``labels`` [n] (1..K as the dataset
    gives them); ``masks`` the same images' [n, H, W] (or [n, 1, H, W]) masks at the original
    size, probabilities (> 0.5 counts, as torchvision thresholds) or 0/1. Only these images are
    scored, and their ground truth found by nothing counts as missed; no detection at all
    scores 0. COCOeval's printed summary goes to ``summaries[iou_type]``, not to stdout.
    """
    if len(detections) != len(masks):
        raise ValueError(f"{len(detections)} detection entries but {len(masks)} mask entries")
    labels_to_cat = category_ids(coco_gt)
    box_results: list[dict] = []
    segm_results: list[dict] = []
    for det, image_masks in zip(detections, masks):
        image_id = int(det["image_id"])
        boxes = torch.as_tensor(det["boxes"], dtype=torch.float64).reshape(-1, 4)
        scores = torch.as_tensor(det["scores"], dtype=torch.float64).reshape(-1).tolist()
        cats = [labels_to_cat[label - 1]
                for label in torch.as_tensor(det["labels"]).reshape(-1).tolist()]
        xywh = torch.cat((boxes[:, :2], boxes[:, 2:] - boxes[:, :2]), 1).tolist()
        rles = _encode_masks(image_masks, coco_gt.imgs[image_id], len(scores))
        for box, score, cat, rle in zip(xywh, scores, cats, rles):
            box_results.append({"image_id": image_id, "category_id": cat, "bbox": box,
                                "score": score})
            segm_results.append({"image_id": image_id, "category_id": cat,
                                 "segmentation": rle, "score": score})
    image_ids = sorted({int(d["image_id"]) for d in detections})
    return {"bbox": _coco_ap(coco_gt, box_results, "bbox", image_ids, summaries),
            "segm": _coco_ap(coco_gt, segm_results, "segm", image_ids, summaries)}


def _encode_masks(masks: Tensor | np.ndarray, image: Mapping, count: int) -> list[dict]:
    """Compressed RLEs (counts as str, JSON-safe) of an image's masks, thresholded."""
    masks = torch.as_tensor(masks)
    if masks.dim() == 4:
        masks = masks[:, 0]
    shape = (count, int(image["height"]), int(image["width"]))
    if tuple(masks.shape) != shape:
        raise ValueError(f"image {image['id']}: masks of shape {tuple(masks.shape)}, "
                         f"expected {shape} (one per detection, at the original size)")
    binary = masks > 0.5 if masks.is_floating_point() else masks != 0
    array = np.asfortranarray(binary.permute(1, 2, 0).numpy().astype(np.uint8))
    with _quiet_pycocotools():
        rles = mask_utils.encode(array) if count else []
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _coco_ap(coco_gt: COCO, results: list[dict], iou_type: str, image_ids: list[int],
             summaries: dict[str, str] | None) -> float:
    if not results:
        return 0.0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), _quiet_pycocotools():
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    if summaries is not None:
        summaries[iou_type] = printed.getvalue()
    return float(evaluator.stats[0])
