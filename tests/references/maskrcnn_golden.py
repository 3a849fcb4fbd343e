"""Golden values for references/maskrcnn/ops.py, computed by the real torchvision.

Not a test (pytest collects only test_*.py): our torch pin cannot load torchvision, so the values
are made once, by hand, in a throwaway environment that has it, and committed:

    python3.11 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    /tmp/tvenv/bin/python tests/references/maskrcnn_golden.py

It writes tests/references/data/maskrcnn_golden.pt (seeded inputs and torchvision's outputs, kept
small), which tests/references/test_maskrcnn_ops.py compares our ops against. Rerun it only when
the cases below change.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import batched_nms, box_iou, nms, roi_align

OUT = Path(__file__).resolve().parent / "data" / "maskrcnn_golden.pt"


def random_boxes(gen: torch.Generator, count: int, width: float, height: float,
                 min_side: float = 1.0, max_side: float = 30.0) -> torch.Tensor:
    x1 = torch.rand(count, generator=gen) * width
    y1 = torch.rand(count, generator=gen) * height
    w = min_side + torch.rand(count, generator=gen) * (max_side - min_side)
    h = min_side + torch.rand(count, generator=gen) * (max_side - min_side)
    return torch.stack((x1, y1, x1 + w, y1 + h), dim=1)


def nms_cases(gen: torch.Generator) -> list[dict]:
    cases = []
    for count, threshold in ((150, 0.3), (150, 0.5), (200, 0.7)):
        boxes = random_boxes(gen, count, 60, 50)
        scores = torch.rand(count, generator=gen)
        cases.append({"boxes": boxes, "scores": scores, "iou_threshold": threshold})
    # Ties: scores on a coarse grid and whole-pixel boxes with exact duplicates, so the stable
    # order of equal scores and the strict ">" decide what is kept.
    boxes = random_boxes(gen, 80, 30, 30, 2, 12).round()
    boxes = torch.cat((boxes, boxes[:20]))
    scores = (torch.rand(100, generator=gen) * 5).floor() / 5
    cases.append({"boxes": boxes, "scores": scores, "iou_threshold": 0.5})
    for case in cases:
        case["keep"] = nms(case["boxes"], case["scores"], case["iou_threshold"])
    return cases


def batched_nms_cases(gen: torch.Generator) -> list[dict]:
    cases = []
    for count, classes, threshold in ((300, 5, 0.5), (120, 3, 0.3)):
        boxes = random_boxes(gen, count, 80, 60)
        scores = torch.rand(count, generator=gen)
        idxs = torch.randint(0, classes, (count,), generator=gen)
        keep = batched_nms(boxes, scores, idxs, threshold)
        cases.append({"boxes": boxes, "scores": scores, "idxs": idxs, "iou_threshold": threshold,
                      "keep": keep})
    return cases


def roi_align_cases(gen: torch.Generator) -> list[dict]:
    # (features N, C, H, W), ROIs, output size, spatial scale, sampling ratio, aligned
    specs = [
        ((2, 3, 10, 13), 12, 7, 1.0, 2, True),
        ((2, 3, 10, 13), 12, 7, 1.0, 2, False),
        ((1, 4, 7, 5), 10, (3, 5), 0.5, -1, True),
        ((1, 4, 7, 5), 10, (3, 5), 0.5, 0, False),
        ((3, 2, 16, 16), 15, 4, 0.25, 1, True),
        ((3, 2, 16, 16), 15, 4, 0.25, 3, False),
        ((2, 2, 9, 11), 10, 1, 1.0, -1, True),
        ((1, 2, 12, 12), 6, 14, 0.5, 2, True),
        ((2, 1, 20, 15), 12, 5, 1.0, -1, False),
    ]
    cases = []
    for shape, count, output_size, scale, ratio, aligned in specs:
        n, _, h, w = shape
        features = torch.randn(shape, generator=gen)
        img_w, img_h = w / scale, h / scale
        # Boxes from ~20% outside the image to past its far edge, some tiny, some inverted.
        x1 = (torch.rand(count, generator=gen) * 1.4 - 0.2) * img_w
        y1 = (torch.rand(count, generator=gen) * 1.4 - 0.2) * img_h
        bw = torch.rand(count, generator=gen) * img_w * 0.8
        bh = torch.rand(count, generator=gen) * img_h * 0.8
        bw[0], bh[0] = 0.0, 0.0               # a point
        bw[1], bh[1] = -0.7, 0.3              # inverted and thin
        batch = torch.randint(0, n, (count, 1), generator=gen).float()
        rois = torch.cat((batch, torch.stack((x1, y1, x1 + bw, y1 + bh), 1)), 1)
        out = roi_align(features, rois, output_size, scale, ratio, aligned)
        weights = output_weights(out.shape)
        grad_input = features.clone().requires_grad_(True)
        (roi_align(grad_input, rois, output_size, scale, ratio, aligned) * weights).sum().backward()
        cases.append({"input": features, "rois": rois, "output_size": output_size,
                      "spatial_scale": scale, "sampling_ratio": ratio, "aligned": aligned,
                      "out": out, "grad_input": grad_input.grad})
    return cases


def output_weights(shape: torch.Size) -> torch.Tensor:
    """Fixed weights on roi_align's output whose sum's gradient is checked (the test makes the
    same ones: a formula, not stored)."""
    return torch.cos(torch.arange(math.prod(shape), dtype=torch.float32) * 0.7).reshape(shape)


def box_coder_cases(gen: torch.Generator) -> list[dict]:
    cases = []
    for weights in ((10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0)):
        coder = BoxCoder(weights)
        reference = random_boxes(gen, 40, 100, 80, 2, 50)
        proposals = random_boxes(gen, 40, 100, 80, 2, 50)
        encoded = coder.encode([reference[:15], reference[15:]], [proposals[:15], proposals[15:]])
        codes = torch.randn(40, 4 * 3, generator=gen) * 2
        codes[:5, 2::4] = 50.0                # exp() would overflow without bbox_xform_clip
        decoded = coder.decode(codes, [proposals[:15], proposals[15:]])
        cases.append({"weights": weights, "reference": reference, "proposals": proposals,
                      "encoded": torch.cat(encoded), "codes": codes, "decoded": decoded})
    return cases


def matcher_cases(gen: torch.Generator) -> list[dict]:
    cases = []
    for high, low, allow in ((0.7, 0.3, True), (0.5, 0.5, False), (0.7, 0.3, False)):
        quality = (torch.rand(6, 50, generator=gen) * 20).floor() / 20   # ties on purpose
        quality[2] = quality[2] * 0.2                                    # a gt nothing likes
        matches = Matcher(high, low, allow)(quality)
        cases.append({"high": high, "low": low, "allow": allow, "quality": quality,
                      "matches": matches})
    return cases


def paste_cases(gen: torch.Generator) -> list[dict]:
    cases = []
    for count, size, img_h, img_w, padding in ((7, 28, 30, 36, 1), (4, 14, 25, 21, 2)):
        masks = torch.sigmoid(torch.randn(count, 1, size, size, generator=gen) * 3)
        boxes = random_boxes(gen, count, img_w, img_h, 1, 30) - 5
        boxes[0] = torch.tensor([-8.0, -3.5, 12.25, 9.0])          # over the top-left corner
        boxes[1] = torch.tensor([img_w - 4.0, 2.0, img_w + 9.0, 15.0])  # past the right edge
        boxes[2] = torch.tensor([3.0, 4.0, 3.4, 4.2])              # under a pixel
        out = paste_masks_in_image(masks, boxes, (img_h, img_w), padding=padding)
        cases.append({"masks": masks[:, 0], "boxes": boxes, "img_h": img_h, "img_w": img_w,
                      "padding": padding, "out": out[:, 0]})
    return cases


def box_iou_cases(gen: torch.Generator) -> list[dict]:
    a, b = random_boxes(gen, 20, 40, 40), random_boxes(gen, 30, 40, 40)
    return [{"boxes1": a, "boxes2": b, "iou": box_iou(a, b)}]


def compact(value):
    """Every tensor as its own small contiguous copy: a saved view would carry its whole base."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone().contiguous()
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def main() -> None:
    gen = torch.Generator().manual_seed(20240611)
    golden = {
        "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
        "bbox_xform_clip": math.log(1000.0 / 16),
        "box_iou": box_iou_cases(gen), "nms": nms_cases(gen),
        "batched_nms": batched_nms_cases(gen), "roi_align": roi_align_cases(gen),
        "box_coder": box_coder_cases(gen), "matcher": matcher_cases(gen),
        "paste_masks": paste_cases(gen),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(compact(golden), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}")


if __name__ == "__main__":
    main()
