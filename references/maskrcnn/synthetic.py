"""A tiny COCO for smoke runs, written in the real format so that the same loader, masks and
COCOeval path run as on COCO 2017:

    OUT/synthetic-coco/annotations/instances_{train,val}2017.json
    OUT/synthetic-coco/{train,val}2017/<12-digit id>.png

Each image (96-128 pixels a side) is a noisy grey background with 1-3 planted objects of three
categories, each a shape of its own colour: red rectangles, green ellipses, blue triangles.
Segmentations are the polygons the shapes were drawn from; boxes are their extents. Category
ids are 3, 7 and 11 (non-contiguous, as COCO's 1..90 with gaps). A detector that learns which
colour-and-shape is where can find them -- the AP it reaches measures that the whole pipeline
(loader, model, losses, evaluation) works. Seeded: the same seed writes the same files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

FOLDER = "synthetic-coco"
# id -> (name, RGB colour, polygon sides: 4 a rectangle, 3 a triangle, 0 an ellipse)
CATEGORIES = {3: ("red rectangle", (200, 40, 40), 4), 7: ("green ellipse", (40, 180, 60), 0),
              11: ("blue triangle", (50, 70, 210), 3)}
SIDE_PX = (96, 128)                   # image width and height are drawn from this range
OBJECT_PX = (22, 50)                  # object width and height
ELLIPSE_POINTS = 24


def write(root: Path, n_train: int, n_eval: int, seed: int) -> Path:
    """Writes both splits under ``root``/synthetic-coco and returns that folder."""
    folder = Path(root) / FOLDER
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count, split_seed in (("train", n_train, seed), ("val", n_eval, seed + 10_000)):
        data = _split(folder / f"{split}2017", count, np.random.default_rng(split_seed),
                      first_id=1 if split == "train" else 1_000_000)
        (folder / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return folder


def _split(images_dir: Path, count: int, rng: np.random.Generator, first_id: int) -> dict:
    from PIL import Image, ImageDraw

    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for n in range(count):
        image_id = first_id + n
        width, height = (int(v) for v in rng.integers(SIDE_PX[0], SIDE_PX[1] + 1, size=2))
        pixels = rng.normal(115, 28, size=(height, width, 3)) + rng.normal(0, 15, size=3)
        img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        boxes: list[tuple[float, float, float, float]] = []
        for _ in range(int(rng.integers(1, 4))):
            placed = _place(rng, width, height, boxes)
            if placed is None:
                continue
            category = int(rng.choice(list(CATEGORIES)))
            _, colour, sides = CATEGORIES[category]
            polygon = _polygon(sides, placed)
            tint = tuple(int(np.clip(c + rng.normal(0, 12), 0, 255)) for c in colour)
            draw.polygon([(x, y) for x, y in zip(polygon[0::2], polygon[1::2])], fill=tint)
            boxes.append(placed)
            x1, y1, x2, y2 = _extent(polygon)
            annotations.append({
                "id": image_id * 10 + len(boxes), "image_id": image_id, "category_id": category,
                "iscrowd": 0, "area": _area(polygon), "bbox": [x1, y1, x2 - x1, y2 - y1],
                "segmentation": [polygon]})
        name = f"{image_id:012d}.png"
        img.save(images_dir / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height,
                       "license": 1})
    return {"info": {"description": "mlperf-edge synthetic COCO (smoke runs)", "version": "1.0",
                     "year": 2017},
            "licenses": [{"id": 1, "name": "generated", "url": ""}],
            "images": images, "annotations": annotations,
            "categories": [{"id": cid, "name": name, "supercategory": "shape"}
                           for cid, (name, _, _) in CATEGORIES.items()]}


def _place(rng: np.random.Generator, width: int, height: int,
           boxes: list[tuple[float, float, float, float]]
           ) -> tuple[float, float, float, float] | None:
    """A box (x1, y1, x2, y2) inside the image that barely touches the others (20 tries)."""
    for _ in range(20):
        w, h = (float(v) for v in rng.integers(OBJECT_PX[0], OBJECT_PX[1] + 1, size=2))
        x1 = float(rng.integers(2, max(3, int(width - w - 2))))
        y1 = float(rng.integers(2, max(3, int(height - h - 2))))
        box = (x1, y1, min(x1 + w, width - 1.0), min(y1 + h, height - 1.0))
        if all(_overlap(box, other) < 0.05 for other in boxes):
            return box
    return None


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over the smaller box's area."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def _polygon(sides: int, box: tuple[float, float, float, float]) -> list[float]:
    """COCO's flat [x1, y1, x2, y2, ...] polygon of the shape inscribed in ``box``."""
    x1, y1, x2, y2 = box
    if sides == 4:
        points = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    elif sides == 3:
        points = [((x1 + x2) / 2, y1), (x2, y2), (x1, y2)]
    else:
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        points = [(cx + rx * math.cos(2 * math.pi * k / ELLIPSE_POINTS),
                   cy + ry * math.sin(2 * math.pi * k / ELLIPSE_POINTS))
                  for k in range(ELLIPSE_POINTS)]
    return [round(v, 2) for point in points for v in point]


def _extent(polygon: list[float]) -> tuple[float, float, float, float]:
    xs, ys = polygon[0::2], polygon[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _area(polygon: list[float]) -> float:
    """The shoelace formula: the polygon's area in square pixels."""
    xs, ys = polygon[0::2], polygon[1::2]
    return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2
