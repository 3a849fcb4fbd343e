"""Mask R-CNN's detection ops against torchvision's own outputs and against answers by hand.

The golden file holds seeded inputs and what torchvision 0.29.1 returned for them (made by
tests/references/maskrcnn_golden.py in a throwaway venv: our torch pin cannot load torchvision).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from references.maskrcnn import ops

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_FILE = Path(__file__).resolve().parent / "data" / "maskrcnn_golden.pt"
ATOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN_FILE, weights_only=True)


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= atol, f"max abs error {err}"


# ------------------------------------------------------------------------------ golden values

def test_golden_file_is_small_and_from_torchvision(golden):
    assert GOLDEN_FILE.stat().st_size < 300_000
    assert golden["torchvision"].startswith("0.29.1")
    assert golden["bbox_xform_clip"] == pytest.approx(math.log(1000 / 16))


def test_box_iou_matches_torchvision(golden):
    for case in golden["box_iou"]:
        close(ops.box_iou(case["boxes1"], case["boxes2"]), case["iou"])


def test_nms_matches_torchvision(golden):
    for case in golden["nms"]:
        keep = ops.nms(case["boxes"], case["scores"], case["iou_threshold"])
        assert keep.dtype == torch.int64
        assert keep.tolist() == case["keep"].tolist()


def test_nms_blocks_do_not_change_the_result(golden, monkeypatch):
    monkeypatch.setattr(ops, "_NMS_BLOCK_ROWS", 7)
    for case in golden["nms"]:
        keep = ops.nms(case["boxes"], case["scores"], case["iou_threshold"])
        assert keep.tolist() == case["keep"].tolist()


def test_batched_nms_matches_torchvision(golden):
    for case in golden["batched_nms"]:
        keep = ops.batched_nms(case["boxes"], case["scores"], case["idxs"], case["iou_threshold"])
        assert keep.tolist() == case["keep"].tolist()


def test_batched_nms_is_per_category_nms(golden):
    # Above 1000 boxes (torchvision's vanilla path) and with negative coordinates, where the
    # coordinate trick is not used: the union of per-category nms, by score.
    case = golden["nms"][2]
    boxes = torch.cat((case["boxes"], case["boxes"] - 40.0))[:, None].repeat(1, 3, 1)
    boxes, scores = boxes.reshape(-1, 4), torch.rand(len(boxes) * 3,
                                                     generator=torch.Generator().manual_seed(3))
    idxs = torch.arange(len(boxes)) % 4
    assert boxes.numel() > 4000 and bool((boxes < 0).any())
    keep = ops.batched_nms(boxes, scores, idxs, 0.5)
    expected = torch.cat([torch.where(idxs == c)[0][ops.nms(boxes[idxs == c], scores[idxs == c],
                                                            0.5)] for c in range(4)])
    assert sorted(keep.tolist()) == sorted(expected.tolist())
    assert bool((scores[keep][1:] <= scores[keep][:-1]).all())


def _roi_align_case(case: dict, x: torch.Tensor) -> torch.Tensor:
    return ops.roi_align(x, case["rois"], case["output_size"], case["spatial_scale"],
                         case["sampling_ratio"], case["aligned"])


def test_roi_align_and_its_gradient_match_torchvision(golden):
    cases = golden["roi_align"]
    assert {c["sampling_ratio"] <= 0 for c in cases} == {True, False}
    assert {c["aligned"] for c in cases} == {True, False}
    for case in cases:
        x = case["input"].clone().requires_grad_(True)
        out = _roi_align_case(case, x)
        close(out, case["out"])
        # The same fixed weights as the generator's: grad of sum(out * w) w.r.t. the input.
        weights = torch.cos(torch.arange(out.numel(), dtype=torch.float32) * 0.7)
        (out * weights.reshape(out.shape)).sum().backward()
        close(x.grad, case["grad_input"])


def test_roi_align_chunks_do_not_change_the_result(golden, monkeypatch):
    monkeypatch.setattr(ops, "_ROI_ALIGN_MAX_ELEMENTS", 1)     # one ROI per chunk
    for case in golden["roi_align"][:4]:
        close(_roi_align_case(case, case["input"]), case["out"])


def test_box_coder_matches_torchvision(golden):
    for case in golden["box_coder"]:
        coder = ops.BoxCoder(case["weights"])
        ref, props = case["reference"], case["proposals"]
        encoded = coder.encode([ref[:15], ref[15:]], [props[:15], props[15:]])
        assert [len(t) for t in encoded] == [15, 25]
        close(torch.cat(encoded), case["encoded"])
        decoded = coder.decode(case["codes"], [props[:15], props[15:]])
        close(decoded, case["decoded"], atol=1e-4)     # coordinates ~ 1e3 after clipped exp()


def test_matcher_matches_torchvision(golden):
    for case in golden["matcher"]:
        matches = ops.Matcher(case["high"], case["low"], case["allow"])(case["quality"].clone())
        assert matches.tolist() == case["matches"].tolist()


def test_paste_masks_matches_torchvision(golden):
    for case in golden["paste_masks"]:
        out = ops.paste_masks_in_image(case["masks"], case["boxes"], case["img_h"],
                                       case["img_w"], padding=case["padding"])
        close(out, case["out"])
        four_d = ops.paste_masks_in_image(case["masks"][:, None], case["boxes"], case["img_h"],
                                          case["img_w"], padding=case["padding"])
        close(four_d[:, 0], case["out"])


# ------------------------------------------------------------------------------- by hand

def test_box_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    # overlap 1x1 of two 2x2 boxes: 1 / (4 + 4 - 1); the 2x2 inside the 4x4: 4 / 16; disjoint: 0
    expected = torch.tensor([[1 / 7, 0.0], [4 / 16, 0.0]])
    close(ops.box_iou(a, b), expected, atol=1e-7)
    assert ops.box_area(a).tolist() == [4.0, 16.0]


def test_nms_by_hand():
    boxes = torch.tensor([[1.0, 0.0, 11.0, 10.0],     # B: IoU with A = 90 / 110 = 0.818
                          [20.0, 20.0, 30.0, 30.0],   # C: far from both
                          [0.0, 0.0, 10.0, 10.0]])    # A: the best score
    scores = torch.tensor([0.8, 0.7, 0.9])
    assert ops.nms(boxes, scores, 0.5).tolist() == [2, 1]
    assert ops.nms(boxes, scores, 0.82).tolist() == [2, 0, 1]
    # Different categories never suppress each other.
    assert ops.batched_nms(boxes, scores, torch.tensor([1, 0, 0]), 0.5).tolist() == [2, 0, 1]
    assert ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [2, 1]


def test_nms_suppresses_only_above_the_threshold_and_keeps_tie_order():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0]])   # IoU exactly 0.5
    scores = torch.tensor([0.9, 0.8])
    assert ops.nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert ops.nms(boxes, scores, 0.49).tolist() == [0]
    same = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 3)
    assert ops.nms(same, torch.tensor([0.5, 0.7, 0.7]), 0.5).tolist() == [1]


def test_nms_compares_like_torchvision_not_in_float32():
    # IoU 3 / 10 is float32 0.30000001 > 0.3: torchvision's C++ (double threshold) drops the
    # second box, where a float32 comparison with 0.3 (also 0.30000001) would keep it.
    boxes = torch.tensor([[0.0, 0.0, 6.0, 1.0], [3.0, 0.0, 10.0, 1.0]])
    assert not bool(ops.box_iou(boxes, boxes)[0, 1] > 0.3)
    assert ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.3).tolist() == [0]
    assert ops.nms(boxes.double(), torch.tensor([0.9, 0.8]), 0.3).tolist() == [0, 1]


def test_empty_inputs():
    empty = torch.zeros((0, 4))
    assert ops.nms(empty, torch.zeros(0), 0.5).dtype == torch.int64
    assert ops.nms(empty, torch.zeros(0), 0.5).numel() == 0
    no_idxs = torch.zeros(0, dtype=torch.int64)
    assert ops.batched_nms(empty, torch.zeros(0), no_idxs, 0.5).numel() == 0
    assert ops.roi_align(torch.ones(1, 3, 4, 4), torch.zeros(0, 5), 7).shape == (0, 3, 7, 7)
    assert ops.paste_masks_in_image(torch.zeros(0, 5, 5), empty, 6, 8).shape == (0, 6, 8)


def test_clip_and_remove_small_boxes():
    boxes = torch.tensor([[-5.0, 2.0, 30.0, 50.0], [3.0, 4.0, 3.5, 10.0]])
    assert ops.clip_boxes_to_image(boxes, (40, 20)).tolist() == [[0.0, 2.0, 20.0, 40.0],
                                                                  [3.0, 4.0, 3.5, 10.0]]
    assert ops.remove_small_boxes(boxes, 1.0).tolist() == [0]
    assert ops.remove_small_boxes(boxes, 0.5).tolist() == [0, 1]


def test_roi_align_of_a_constant_image():
    image = torch.full((1, 2, 8, 8), 3.0)
    out = ops.roi_align(image, torch.tensor([[0.0, 1.0, 1.0, 6.0, 5.0]]), (3, 4), sampling_ratio=-1)
    close(out, torch.full((1, 2, 3, 4), 3.0))


def test_roi_align_border_rules():
    # A row of 4 bins, one sample each, at x = -2.5, -1.5, -0.5, 0.5 (aligned=False: no shift):
    # beyond -1 the sample is 0; in [-1, 0) it reads pixel 0; so [0, 0, c, c].
    image = torch.full((1, 1, 4, 6), 2.0)
    left = ops.roi_align(image, torch.tensor([[0.0, -3.0, 0.0, 1.0, 4.0]]), (1, 4),
                         sampling_ratio=1, aligned=False)
    assert left.flatten().tolist() == [0.0, 0.0, 2.0, 2.0]
    # Past the far edge: x = 4.5, 5.5, 6.5 (W = 6), 7.5 -> last pixel, last pixel, 0, 0.
    right = ops.roi_align(image, torch.tensor([[0.0, 4.0, 0.0, 8.0, 4.0]]), (1, 4),
                          sampling_ratio=1, aligned=False)
    assert right.flatten().tolist() == [2.0, 2.0, 0.0, 0.0]


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_of_a_linear_ramp_is_the_bin_centre(aligned, sampling_ratio):
    # f(y, x) = 2x + 3y + 1 is reproduced exactly by bilinear sampling, so each bin averages to
    # f at its centre: x1 * scale - offset + (pw + 0.5) * bin width, and the same for y.
    height, width, scale = 12, 16, 0.5
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    image = (2 * xs + 3 * ys + 1)[None, None].repeat(2, 1, 1, 1)
    box = (4.0, 6.0, 22.0, 17.0)             # -> (2, 3)-(11, 8.5) on the map, inside it
    out = ops.roi_align(image, [torch.zeros(0, 4, dtype=torch.float64),
                                torch.tensor([box], dtype=torch.float64)],
                        (3, 4), spatial_scale=scale, sampling_ratio=sampling_ratio,
                        aligned=aligned)
    offset = 0.5 if aligned else 0.0
    x0, y0 = box[0] * scale - offset, box[1] * scale - offset
    bin_w, bin_h = (box[2] - box[0]) * scale / 4, (box[3] - box[1]) * scale / 3
    cx = x0 + (torch.arange(4, dtype=torch.float64) + 0.5) * bin_w
    cy = y0 + (torch.arange(3, dtype=torch.float64) + 0.5) * bin_h
    close(out[0, 0], 2 * cx[None, :] + 3 * cy[:, None] + 1, atol=1e-9)


def test_roi_align_box_list_equals_indexed_rois():
    image = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    per_image = [torch.tensor([[1.0, 1.0, 6.0, 7.0]]), torch.tensor([[0.0, 2.0, 4.0, 8.5],
                                                                     [3.0, 3.0, 9.0, 9.0]])]
    rois = torch.tensor([[0.0, 1.0, 1.0, 6.0, 7.0], [1.0, 0.0, 2.0, 4.0, 8.5],
                         [1.0, 3.0, 3.0, 9.0, 9.0]])
    close(ops.roi_align(image, per_image, 5), ops.roi_align(image, rois, 5), atol=0.0)
    with pytest.raises(ValueError, match="Tensor\\[K, 5\\]"):
        ops.roi_align(image, torch.zeros(3, 4), 5)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck(aligned, sampling_ratio):
    image = torch.randn(2, 2, 5, 6, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    rois = torch.tensor([[0.0, 0.5, 0.2, 4.5, 3.9], [1.0, -1.5, 2.0, 3.0, 7.0],
                         [1.0, 2.2, 1.1, 2.9, 1.6]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: ops.roi_align(x, rois, (2, 3), 1.0, sampling_ratio, aligned), (image,))


def test_box_coder_by_hand():
    coder = ops.BoxCoder()
    assert coder.weights == (10.0, 10.0, 5.0, 5.0)
    assert coder.bbox_xform_clip == pytest.approx(math.log(1000 / 16))
    proposal = torch.tensor([[10.0, 20.0, 30.0, 60.0]])     # centre (20, 40), 20 x 40
    target = torch.tensor([[12.0, 20.0, 52.0, 60.0]])       # centre (32, 40), 40 x 40
    # dx = 10 * (32 - 20) / 20, dy = 0, dw = 5 * log(40 / 20), dh = 5 * log(1)
    close(coder.encode_single(target, proposal), torch.tensor([[6.0, 0.0, 5 * math.log(2), 0.0]]))
    close(coder.decode(coder.encode_single(target, proposal), [proposal])[:, 0], target, 1e-5)
    # A huge dw is capped: width = 20 * exp(log(1000 / 16)) = 1250, about the same centre.
    huge = coder.decode_single(torch.tensor([[0.0, 0.0, 1000.0, 0.0]]), proposal)
    close(huge, torch.tensor([[20.0 - 625.0, 20.0, 20.0 + 625.0, 60.0]]), 1e-3)


def test_matcher_by_hand():
    quality = torch.tensor([[0.9, 0.4, 0.1, 0.1],
                            [0.1, 0.2, 0.05, 0.25]])     # gt 1 is best matched by column 3
    assert ops.Matcher(0.7, 0.3)(quality.clone()).tolist() == [0, -2, -1, -1]
    assert ops.Matcher(0.7, 0.3, True)(quality.clone()).tolist() == [0, -2, -1, 1]
    with pytest.raises(ValueError, match="ground-truth"):
        ops.Matcher(0.7, 0.3)(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="low_threshold"):
        ops.Matcher(0.3, 0.7)


def test_sampler_counts_and_determinism():
    labels = torch.cat((torch.full((10,), 3), torch.zeros(100, dtype=torch.int64),
                        torch.full((20,), -1)))
    sampler = ops.BalancedPositiveNegativeSampler(16, 0.25)

    def draw(seed: int, lab: torch.Tensor = labels) -> tuple[torch.Tensor, torch.Tensor]:
        pos, neg = sampler([lab], generator=torch.Generator().manual_seed(seed))
        return pos[0], neg[0]

    pos, neg = draw(0)
    assert pos.dtype == torch.uint8 and int(pos.sum()) == 4 and int(neg.sum()) == 12
    assert bool((labels[pos.bool()] >= 1).all()) and bool((labels[neg.bool()] == 0).all())
    assert all(torch.equal(a, b) for a, b in zip(draw(0), (pos, neg)))
    assert not all(torch.equal(a, b) for a, b in zip(draw(1), (pos, neg)))
    few = labels.clone()
    few[2:10] = 0                                   # only 2 positives: negatives make up
    pos, neg = draw(0, few)
    assert int(pos.sum()) == 2 and int(neg.sum()) == 14
    seeded = ops.BalancedPositiveNegativeSampler(16, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(seeded([labels])[0][0], draw(0)[0])


def test_paste_masks_by_hand():
    # A 4x4 mask of ones, padded to 6x6; the box (2, 3)-(5, 6) grows by 6/4 about its centre to
    # (1.25, 2.25)-(5.75, 6.75), truncated to pixels 1..5 x 2..6: 5x5 pixels, ratio 6/5. Pixel
    # x = 1 samples the padded mask at 1.2 * 0.5 - 0.5 = 0.1: 0.9 * 0 + 0.1 * 1; x = 3 at 2.5: 1.
    out = ops.paste_masks_in_image(torch.ones(1, 4, 4), torch.tensor([[2.0, 3.0, 5.0, 6.0]]), 9, 8)
    assert out.shape == (1, 9, 8)
    assert out[0, 4, 3].item() == pytest.approx(1.0)
    assert out[0, 4, 1].item() == pytest.approx(0.1)
    assert out[0, 2, 1].item() == pytest.approx(0.01)
    inside = torch.zeros(9, 8, dtype=torch.bool)
    inside[2:7, 1:6] = True
    assert bool((out[0][~inside] == 0).all()) and bool((out[0][inside] > 0).all())
    pasted = out[0, 2:7, 1:6]                    # symmetric: the mask and box are
    close(pasted, pasted.flip(0), 1e-6)
    close(pasted, pasted.flip(1), 1e-6)
    # A box wholly above or left of the image pastes nothing (torchvision's loop raises there).
    outside = torch.tensor([[10.0, -50.0, 30.0, -20.0], [-40.0, 1.0, -30.0, 7.0]])
    assert not bool(ops.paste_masks_in_image(torch.ones(2, 4, 4), outside, 9, 8).any())


def test_no_torchvision_import():
    for path in (ROOT / "references" / "maskrcnn").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "torchvision" for n in names), path
