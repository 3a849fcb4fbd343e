"""Box and mask AP of a model on the evaluation split, with COCOeval (coco.evaluate).

The model sees each image at the size the dataset resized it to and answers in those pixels;
COCO's ground truth is in the original image's pixels. So, as maskrcnn-benchmark's evaluation
does, boxes are scaled back to the original size and every mask probability map is resized
(bilinear) to the original size before it is thresholded at 0.5.

Full-size masks of a whole evaluation set do not fit in memory (5,000 COCO images x up to 100
detections x 640 x 480 pixels), so each image's masks are kept as compressed RLE as soon as
they are made, and decoded one image at a time when COCOeval's encoder asks for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torch import Tensor

from references.maskrcnn import coco


class RleMasks(Sequence):
    """Per image, its masks as compressed RLEs; item i decodes to uint8 [n, H, W]."""

    def __init__(self) -> None:
        self._images: list[tuple[list[dict], int, int]] = []

    def append(self, masks: Tensor) -> None:
        """Keeps a [n, H, W] bool/uint8 mask stack of one image, compressed."""
        n, height, width = masks.shape
        array = np.asfortranarray(masks.permute(1, 2, 0).to(torch.uint8).numpy())
        with coco._quiet_pycocotools():
            rles = mask_utils.encode(array) if n else []
        self._images.append((rles, height, width))

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> Tensor:
        rles, height, width = self._images[index]
        if not rles:
            return torch.zeros((0, height, width), dtype=torch.uint8)
        with coco._quiet_pycocotools():
            decoded = mask_utils.decode(rles)          # [H, W, n], Fortran order
        return torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1)))


@torch.inference_mode()
def predict(model: torch.nn.Module, batches: Iterable, device: str
            ) -> tuple[list[dict], RleMasks]:
    """Detections in the original images' pixels, and their masks (see the module doc)."""
    model.eval()
    detections: list[dict] = []
    masks = RleMasks()
    for images, targets in batches:
        outputs = model([image.to(device) for image in images])
        for out, target in zip(outputs, targets):
            (orig_h, orig_w), (h, w) = target["orig_size"], target["size"]
            scale = torch.tensor([orig_w / w, orig_h / h] * 2, device=out["boxes"].device)
            detections.append({"image_id": target["image_id"],
                               "boxes": (out["boxes"] * scale).cpu(),
                               "scores": out["scores"].cpu(), "labels": out["labels"].cpu()})
            probabilities = out["masks"]
            if probabilities.shape[-2:] != (orig_h, orig_w) and len(probabilities):
                probabilities = F.interpolate(probabilities, size=(orig_h, orig_w),
                                              mode="bilinear", align_corners=False)
            masks.append((probabilities[:, 0] > 0.5).cpu() if len(probabilities)
                         else torch.zeros((0, orig_h, orig_w), dtype=torch.bool))
    model.train()
    return detections, masks


def average_precision(model: torch.nn.Module, dataset: coco.CocoInstances, batches: Iterable,
                      device: str, summaries: dict[str, str] | None = None) -> dict[str, float]:
    """{"bbox": AP, "segm": AP} over every image of ``dataset`` (COCOeval AP@[.50:.95])."""
    detections, masks = predict(model, batches, device)
    return coco.evaluate(dataset.coco, detections, masks, summaries)
