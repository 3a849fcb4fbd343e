"""Is this COCO the MLPerf dataset? COCO 2017 is identified by its counts (references.common.
datasets): the images and the instance annotations of instances_train2017.json and
instances_val2017.json, counted from the JSON the loader indexed anyway (nothing more read)."""

from __future__ import annotations

from pathlib import Path

from references.common import datasets

BENCHMARK = "maskrcnn"


def counts(train_index: dict, val_index: dict) -> dict[str, int]:
    """The identifying counts of two COCO instances files (their parsed JSON)."""
    return {"train images": len(train_index["images"]),
            "train annotations": len(train_index["annotations"]),
            "val images": len(val_index["images"]),
            "val annotations": len(val_index["annotations"])}


def verdict(train_index: dict, val_index: dict, data_dir: Path) -> datasets.Verdict:
    return datasets.identify(BENCHMARK, "coco2017", counts(train_index, val_index),
                             where=f"COCO layout in {Path(data_dir).name}/")
