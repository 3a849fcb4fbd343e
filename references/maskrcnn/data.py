"""COCO 2017 as distributed (cocodataset.org: annotations_trainval2017.zip, train2017.zip,
val2017.zip), extracted into one folder:

    DATA/annotations/instances_train2017.json    DATA/train2017/<12-digit id>.jpg
    DATA/annotations/instances_val2017.json      DATA/val2017/<12-digit id>.jpg

``check_data_dir`` only looks for those four paths (and the backbone checkpoint, if the config
names one), so a wrong folder is one DatasetError line naming what is missing, before torch is
imported or anything is timed. Reading the JSON and matching it to the image files is
coco.py's, at the start of the run (untimed).

Torch-free: the agent checks data with it.
"""

from __future__ import annotations

from pathlib import Path

from references.common.errors import ConfigError, DatasetError

SPLITS = ("train", "val")
LAYOUT = ("annotations/instances_{train,val}2017.json with the images in train2017/ and "
          "val2017/")


def backbone_path(cfg, data_dir: Path | None) -> Path | None:
    """The checkpoint the config names: a relative path is under the data root (the folder
    that holds the COCO folder, where an agent's job may name one), or under the working folder
    when the run has no data folder (smoke)."""
    if cfg.backbone_checkpoint is None:
        return None
    path = Path(cfg.backbone_checkpoint).expanduser()
    if path.is_absolute():
        return path
    return (Path(data_dir).parent if data_dir is not None else Path.cwd()) / path


def check_data_dir(cfg, data_dir: Path | None) -> None:
    """DatasetError unless the COCO layout is there; ConfigError for a missing checkpoint."""
    checkpoint = backbone_path(cfg, data_dir)
    if checkpoint is not None and not checkpoint.is_file():
        raise ConfigError(f"backbone checkpoint {checkpoint} is missing: expected a state dict "
                          "of our ResNet reference's model (a relative path is under the data "
                          "root; or backbone_checkpoint=none: from scratch)")
    if cfg.data_folder() is None:
        return
    if data_dir is None:
        raise DatasetError(f"--data is required for COCO: the extracted COCO 2017 folder with "
                           f"{LAYOUT}")
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"{root} is missing: expected the COCO 2017 folder with {LAYOUT}")
    for split in SPLITS:
        annotations = root / "annotations" / f"instances_{split}2017.json"
        if not annotations.is_file():
            raise DatasetError(f"{annotations} is missing: expected the COCO layout {LAYOUT}")
        images = root / f"{split}2017"
        if not images.is_dir():
            raise DatasetError(f"{images}/ is missing: the {split} images of {annotations.name} "
                               f"(COCO layout {LAYOUT})")
