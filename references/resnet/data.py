"""ImageNet (ILSVRC2012) as the MLPerf reference feeds it, read from the real folder layout.

    DATA/train/<wnid>/*.JPEG          one folder per class (1,000 of them)
    DATA/val/<wnid>/*.JPEG            validation as class folders, or
    DATA/val/*.JPEG + labels          flat, with LOC_val_solution.csv (Kaggle: ImageId,
                                      PredictionString starting with the wnid) or val_labels.txt
                                      ("ILSVRC2012_val_00000001.JPEG n01751748" per line)

Classes are the train folders, sorted by wnid. JPEGs are decoded with Pillow; the transforms are
the reference's (imagenet_preprocessing.py): training takes a random crop covering 5-100% of the
image with aspect ratio 3/4-4/3, resizes it to 224 and flips it half the time; evaluation
resizes the shorter side to 256 and takes the 224 center. Channel means are subtracted, as the
reference does (no division by a standard deviation).

Smoke runs use synthetic images instead: noise plus one fixed low-frequency pattern per class.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from references.common.errors import DatasetError

EXTENSIONS = (".jpeg", ".jpg")
LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt")
MEAN_RGB = (123.68, 116.78, 103.94)        # imagenet_preprocessing.py _CHANNEL_MEANS


# -- the folder layout (torch-free: the agent checks a folder before it runs) --------------------

def check_data_dir(cfg, data_dir: Path | None) -> None:
    """DatasetError unless ``data_dir`` has train/ and val/ (cheap: no image is read)."""
    if cfg.data_folder() is None:
        return
    if data_dir is None:
        raise DatasetError("--data is required for imagenet: the ILSVRC2012 folder with "
                           "train/<wnid>/*.JPEG and val/")
    _require_layout(Path(data_dir))


def _require_layout(data_dir: Path) -> None:
    for split in ("train", "val"):
        if not (Path(data_dir) / split).is_dir():
            raise DatasetError(f"{Path(data_dir) / split} is missing: expected the ILSVRC2012 "
                               "layout train/<wnid>/*.JPEG and val/")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())


@dataclass(frozen=True)
class Split:
    """A list of image files and their class indices."""

    files: list[Path]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.files)


def scan(data_dir: Path) -> tuple[list[str], Split, Split]:
    """(wnids, train, val) from the folder layout; DatasetError naming what is wrong."""
    data_dir = Path(data_dir)
    train_dir, val_dir = data_dir / "train", data_dir / "val"
    _require_layout(data_dir)
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not wnids:
        raise DatasetError(f"{train_dir} is empty: expected one folder of JPEGs per class "
                           "(train/<wnid>/*.JPEG)")
    index = {w: i for i, w in enumerate(wnids)}
    files, labels = [], []
    for wnid in wnids:
        images = _images(train_dir / wnid)
        if not images:
            raise DatasetError(f"{train_dir / wnid} holds no .JPEG images")
        files += images
        labels += [index[wnid]] * len(images)
    train = Split(files, labels)
    return wnids, train, _scan_val(val_dir, data_dir, index)


def _scan_val(val_dir: Path, data_dir: Path, index: dict[str, int]) -> Split:
    class_dirs = sorted(p for p in val_dir.iterdir() if p.is_dir())
    files, labels = [], []
    if class_dirs:                                    # val/<wnid>/*.JPEG
        for folder in class_dirs:
            if folder.name not in index:
                raise DatasetError(f"{folder} is a class folder with no train/{folder.name}: "
                                   "every validation class needs its training class folder")
            images = _images(folder)
            files += images
            labels += [index[folder.name]] * len(images)
    else:                                             # flat val/*.JPEG + a labels file
        by_name = _read_val_labels(val_dir, data_dir)
        for path in _images(val_dir):
            wnid = by_name.get(path.stem)
            if wnid is None:
                raise DatasetError(f"{path.name} has no label in the validation labels file")
            if wnid not in index:
                raise DatasetError(f"{path.name} is labelled {wnid}, which has no train/{wnid} "
                                   "class folder")
            files.append(path)
            labels.append(index[wnid])
    if not files:
        raise DatasetError(f"{val_dir} holds no .JPEG images: expected val/<wnid>/*.JPEG or "
                           f"val/*.JPEG with {' or '.join(LABEL_FILES)}")
    return Split(files, labels)


def _read_val_labels(val_dir: Path, data_dir: Path) -> dict[str, str]:
    """image stem -> wnid, from the first labels file found in val/ or the data folder."""
    for folder in (val_dir, data_dir):
        for name in LABEL_FILES:
            path = folder / name
            if path.is_file():
                return _parse_labels(path)
    raise DatasetError(f"{val_dir} is flat (no class folders) but has no labels file: "
                       f"expected {' or '.join(LABEL_FILES)} in {val_dir} or {data_dir}")


def _parse_labels(path: Path) -> dict[str, str]:
    labels = {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    csv = path.suffix == ".csv"
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or (csv and lineno == 1 and line.startswith("ImageId")):
            continue
        parts = line.split(",", 1) if csv else line.split()
        wnid = parts[1].split()[0] if len(parts) == 2 and parts[1].split() else None
        if wnid is None or not wnid.startswith("n"):
            expected = ("ImageId,PredictionString (wnid first)" if csv
                        else "'<image file> <wnid>'")
            raise DatasetError(f"{path}:{lineno}: malformed line {line[:60]!r}: expected "
                               f"{expected}")
        labels[Path(parts[0].strip()).stem] = wnid
    return labels


# -- decoding and the reference's transforms ---------------------------------------------------

def decode(path: Path):
    """The image as RGB (Pillow); DatasetError naming the file if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(f"unreadable image {path}: {exc.__class__.__name__}: {exc} "
                           "(set skip_bad_images=true to skip such files)") from None


def random_resized_crop(img, size: int, rng: random.Random, min_area: float = 0.05,
                        ratios: tuple[float, float] = (3 / 4, 4 / 3)):
    """A random crop of ``min_area``-100% of the image at a random aspect ratio, resized to
    size x size; after 10 misses, the central crop (as torchvision and the reference's
    sample_distorted_bounding_box fall back to the whole image)."""
    from PIL import Image

    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(min_area, 1.0)
        ratio = math.exp(rng.uniform(math.log(ratios[0]), math.log(ratios[1])))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return img.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    side = min(w, h)
    x, y = (w - side) // 2, (h - side) // 2
    return img.resize((size, size), Image.BILINEAR, box=(x, y, x + side, y + side))


def resize_center_crop(img, resize: int, size: int):
    """Shorter side to ``resize`` (aspect kept), then the central size x size."""
    from PIL import Image

    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    x, y = (nw - size) // 2, (nh - size) // 2
    return img.crop((x, y, x + size, y + size))


def to_array(img, flip: bool = False) -> np.ndarray:
    """[3, H, W] float32, channel means subtracted (the reference's normalisation)."""
    a = np.asarray(img, dtype=np.float32)
    if flip:
        a = a[:, ::-1]
    a = a - np.asarray(MEAN_RGB, dtype=np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


class ImageDataset:
    """A torch-style dataset over a Split: item -> (image [3, S, S], label) or None when the
    image is unreadable and ``skip_bad`` is set (the collate function drops it)."""

    def __init__(self, split: Split, train: bool, cfg, seed: int) -> None:
        self.split, self.train, self.cfg, self.seed = split, train, cfg, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        path = self.split.files[i]
        try:
            img = decode(path)
        except DatasetError as exc:
            if not self.cfg.skip_bad_images:
                raise
            print(f"warning: skipped {exc}", file=sys.stderr, flush=True)
            return None
        if self.train:
            # One stream per (seed, epoch, image): the same augmentation in any worker.
            rng = random.Random(hash((self.seed, self.epoch, i)))
            crop = random_resized_crop(img, self.cfg.image_size, rng, self.cfg.min_crop_area)
            return to_array(crop, flip=rng.random() < 0.5), self.split.labels[i]
        return to_array(resize_center_crop(img, self.cfg.resize_size, self.cfg.image_size)), \
            self.split.labels[i]


def collate(items):
    """Stack (image, label) pairs, dropping skipped (None) items; None if all were skipped."""
    import torch

    items = [x for x in items if x is not None]
    if not items:
        return None
    images = torch.from_numpy(np.stack([x[0] for x in items]))
    return images, torch.tensor([x[1] for x in items], dtype=torch.int64)


# -- batches as numpy arrays (the interpreter's path; torch's is a DataLoader over ImageDataset) --

def decode_workers(cfg) -> int:
    """Decoding threads or processes: the config's, or one per spare CPU (at least one)."""
    from references.common.runtime import available_cpus

    return cfg.workers if cfg.workers >= 0 else max(1, min(8, available_cpus() - 1))


def array_batches(dataset: ImageDataset, batch_size: int, order: np.ndarray | None,
                  threads: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images float32 [n, 3, S, S], labels int64 [n]) batches of ``dataset`` in ``order``
    (None: file order), decoded by ``threads`` threads (Pillow releases the GIL while it
    decodes and resizes) one batch ahead of the consumer, so at most two batches are in memory.
    Skipped (unreadable, skip_bad_images) images leave their batch shorter; a batch left empty
    is dropped."""
    from concurrent.futures import ThreadPoolExecutor

    indices = np.arange(len(dataset)) if order is None else np.asarray(order)
    chunks = [indices[lo:lo + batch_size] for lo in range(0, len(indices), batch_size)]

    def batch(chunk: np.ndarray):
        return list(pool.map(dataset.__getitem__, chunk.tolist()))

    with ThreadPoolExecutor(max(1, threads)) as pool, ThreadPoolExecutor(1) as ahead:
        pending = ahead.submit(batch, chunks[0]) if chunks else None
        for k in range(len(chunks)):
            items = pending.result()
            pending = ahead.submit(batch, chunks[k + 1]) if k + 1 < len(chunks) else None
            items = [x for x in items if x is not None]
            if items:
                yield (np.stack([x[0] for x in items]),
                       np.asarray([x[1] for x in items], dtype=np.int64))


# -- synthetic data for smoke runs -------------------------------------------------------------

def upsample_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """[..., h, w] -> [..., size, size], bilinear with half-pixel centres
    (torch.nn.functional.interpolate(mode="bilinear", align_corners=False))."""
    def weights(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    (r0, r1, fr), (c0, c1, fc) = weights(x.shape[-2]), weights(x.shape[-1])
    rows = x[..., r0, :] * (1 - fr)[:, None] + x[..., r1, :] * fr[:, None]
    return rows[..., c0] * (1 - fc) + rows[..., c1] * fc


@dataclass(frozen=True)
class Synthetic:
    """Planted-class images as numpy arrays (float32 [n, 3, S, S], labels int64 [n])."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray


def synthetic(cfg, seed: int) -> Synthetic:
    """Unit Gaussian noise plus, per class, a fixed random 4x4 pattern upsampled to the image
    size times ``synthetic_signal``. A classifier must find the pattern under the noise (chance
    is 1 / classes). The patterns are drawn from seed 0, so every run learns the same task; the
    images from ``seed``. numpy only: every runtime trains on the same arrays."""
    size, k = cfg.image_size, cfg.synthetic_classes
    patterns = upsample_bilinear(np.random.default_rng(0).standard_normal((k, 3, 4, 4)), size)
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, k, n)
        noise = rng.standard_normal((n, 3, size, size))
        return (noise + cfg.synthetic_signal * patterns[labels]).astype(np.float32), labels

    xt, yt = draw(cfg.synthetic_train_images)
    xv, yv = draw(cfg.synthetic_val_images)
    return Synthetic(xt, yt, xv, yv)
