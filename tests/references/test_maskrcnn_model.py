"""Mask R-CNN's model: sizes against torchvision's count, anchors, level mapping and matching
worked by hand, a training step's losses and gradients, eval outputs, overfitting one image,
and loading a backbone checkpoint our ResNet reference wrote."""

from __future__ import annotations

import hashlib
import math
import time

import pytest
import torch

from references.common.errors import ConfigError
from references.maskrcnn import ops
from references.maskrcnn.anchors import AnchorGenerator, cell_anchors
from references.maskrcnn.backbone import (
    FPN,
    FrozenBatchNorm2d,
    ResNetBody,
    calibrate_frozen_batch_norm_,
    load_backbone_checkpoint,
)
from references.maskrcnn.mask_head import mask_loss, mask_targets
from references.maskrcnn.model import MaskRCNN, batch_images
from references.maskrcnn.pooler import MultiScaleRoIAlign, map_levels
from references.maskrcnn.roi_heads import RoIHeads, proposal_targets
from references.maskrcnn.rpn import anchor_targets
from references.maskrcnn.variants import VARIANTS, Variant, get_variant
from references.resnet.data import MEAN_RGB
from references.resnet.model import ResNet

torch.set_num_threads(1)

LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}


def planted(height: int = 128, width: int = 128, box: tuple[int, int, int, int] = (32, 40, 96, 84),
            label: int = 2, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """A dim noisy image with one bright red rectangle (x1, y1, x2, y2), and its target."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, height, width, generator=g) * 0.3
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    masks = torch.zeros(1, height, width, dtype=torch.uint8)
    masks[0, y1:y2, x1:x2] = 1
    return image, {"boxes": torch.tensor([box], dtype=torch.float32),
                   "labels": torch.tensor([label]), "masks": masks}


def tiny_model(num_classes: int = 3, image: torch.Tensor | None = None, **overrides) -> MaskRCNN:
    torch.manual_seed(0)
    model = MaskRCNN(num_classes, "r14-fpn-tiny", **overrides)
    if image is not None:
        calibrate_frozen_batch_norm_(model.backbone.body, batch_images([image],
                                                                        model.pixel_mean)[0])
    return model


# ---------------------------------------------------------------------------------- sizes

def test_reference_parameter_count_is_torchvisions():
    # torchvision's maskrcnn_resnet50_fpn(num_classes=91) has 44,401,393 parameters; its 91
    # include background, so it is our K = 90. Same modules, part by part:
    # - ResNet-50 body without fc and with FrozenBatchNorm2d (buffers, no parameters):
    #   ResNet-50's 25,557,032 - fc 2,049,000 - batch-norm affine 53,120 = 23,454,912. Our
    #   v1.5 bottleneck moves a stride, not a weight.
    # - FPN: laterals (256 + 512 + 1024 + 2048) * 256 + 4 * 256 = 984,064; outputs
    #   4 * (256 * 256 * 9 + 256) = 2,360,320; P6 is a max pool.
    # - RPN head: 590,080 + (256 * 3 + 3) + (256 * 12 + 12) = 593,935.
    # - Box head: fc6 256 * 7 * 7 * 1024 + 1024 = 12,846,080, fc7 1,049,600.
    # - Box predictor: 1024 * 91 + 91 = 93,275 scores, 1024 * 364 + 364 = 373,100 deltas.
    # - Mask head: 4 * 590,080 convs, deconv 256 * 256 * 4 + 256 = 262,400, logits
    #   256 * 91 + 91 = 23,387.
    # No difference is left, so the total must be torchvision's exactly.
    parts = {"body": 23_454_912, "fpn": 984_064 + 2_360_320, "rpn": 593_935,
             "box_head": 12_846_080 + 1_049_600, "box_predictor": 93_275 + 373_100,
             "mask_head": 4 * 590_080 + 262_400 + 23_387}
    assert sum(parts.values()) == 44_401_393
    model = MaskRCNN(90)

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(model.backbone.body) == parts["body"]
    assert count(model.backbone.fpn) == parts["fpn"]
    assert count(model.rpn) == parts["rpn"]
    assert count(model.roi_heads.box_head) == parts["box_head"]
    assert count(model.roi_heads.box_predictor) == parts["box_predictor"]
    assert count(model.roi_heads.mask_head) == parts["mask_head"]
    assert count(model) == 44_401_393
    # FREEZE_CONV_BODY_AT 2: the stem's 7x7 (3 * 64 * 49 = 9,408) and the first stage's
    # convolutions (73,728 + 2 * 69,632 = 212,992) are frozen, as torchvision's
    # trainable_backbone_layers=3.
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("backbone.body.stem.", "backbone.body.stages.0."))
                          for n in frozen)
    assert sum(p.numel() for p in model.parameters() if not p.requires_grad) == 222_400
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert "44,401,393 parameters, 44,178,993 trainable" in model.describe()
    # COCO's 80 classes (the reference's NUM_CLASSES 81): 10 fewer scores, 40 fewer deltas
    # and 10 fewer mask maps than with 90: 10,250 + 41,000 + 2,570 = 53,820 fewer, 44,347,573.
    assert count(model.roi_heads) - count(RoIHeads(256, 80)) == 53_820


def test_reference_variant_keeps_the_reference_sizes():
    assert VARIANTS["r50-fpn"] == Variant(
        name="r50-fpn", backbone_arch="resnet50", base_width=64, fpn_channels=256,
        rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000,
        rpn_fpn_post_nms_top_n_train=2000, rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_test=1000, rpn_fpn_post_nms_top_n_test=1000,
        rpn_batch_size_per_image=256, box_batch_size_per_image=512, representation_size=1024,
        mask_conv_channels=(256, 256, 256, 256), detections_per_img=100)
    assert set(VARIANTS) == {"r50-fpn", "r26-fpn-lite", "r14-fpn-tiny"}
    assert get_variant("r50-fpn", backbone_arch="resnet26").name == \
        "r50-fpn with backbone_arch=resnet26"
    with pytest.raises(ConfigError, match="r18-fpn.*expected one of r50-fpn"):
        get_variant("r18-fpn")
    with pytest.raises(ConfigError, match="unknown Mask R-CNN size fpn_width"):
        get_variant("r50-fpn", fpn_width=64)


def test_describe_names_the_variant_and_counts():
    model = tiny_model(3)
    total = sum(p.numel() for p in model.parameters())
    line = model.describe()
    assert "\n" not in line
    assert line.startswith("Mask R-CNN r14-fpn-tiny (ResNet-14 v1.5 (base width 16")
    assert f"{total:,} parameters" in line


# ------------------------------------------------------------------------------- backbone

def test_batching_normalises_like_the_resnet_reference_and_pads_to_32():
    mean = torch.tensor(MEAN_RGB)
    a, b = torch.full((3, 40, 70), 0.5), torch.ones(3, 33, 20)
    batch, sizes = batch_images([a, b], mean)
    assert batch.shape == (2, 3, 64, 96) and sizes == [(40, 70), (33, 20)]
    assert torch.allclose(batch[0, :, 0, 0], 127.5 - mean)
    assert torch.allclose(batch[1, :, 32, 19], 255.0 - mean)
    assert batch[0, :, 40:].abs().sum() == 0 and batch[1, :, :, 20:].abs().sum() == 0


def test_fpn_levels_have_strides_4_to_64():
    fpn = FPN([16, 32, 64, 128], out_channels=8)
    features = [torch.randn(1, c, 16 // 2 ** i, 24 // 2 ** i) for i, c in
                enumerate([16, 32, 64, 128])]
    out = fpn(features)
    assert [tuple(p.shape) for p in out] == [(1, 8, 16, 24), (1, 8, 8, 12), (1, 8, 4, 6),
                                            (1, 8, 2, 3), (1, 8, 1, 2)]
    assert torch.equal(out[4], out[3][:, :, ::2, ::2])   # LastLevelMaxPool: kernel 1, stride 2


def test_backbone_checkpoint_loads_and_reproduces_the_resnet(tmp_path):
    torch.manual_seed(1)
    resnet = ResNet("resnet14", num_classes=10, base_width=8)
    with torch.no_grad():   # statistics as after training, so that frozen BN must use them
        for m in resnet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    path = tmp_path / "resnet14.pt"
    torch.save(resnet.state_dict(), path)
    body = ResNetBody("resnet14", base_width=8)
    digest = load_backbone_checkpoint(body, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    resnet.eval()
    x = torch.randn(2, 3, 64, 64)
    expected, h = [], resnet.stem(x)
    for stage in resnet.stages:
        h = stage(h)
        expected.append(h)
    with torch.no_grad():
        got = body(x)
    assert [tuple(c.shape) for c in got] == [(2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4),
                                            (2, 256, 2, 2)]
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-5, rtol=1e-4)
    assert not any(p.requires_grad for p in body.stem.parameters())
    assert all(p.requires_grad for p in body.stages[1].parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in body.modules()) > 0


def one_line_config_error(body: ResNetBody, path) -> str:
    with pytest.raises(ConfigError) as info:
        load_backbone_checkpoint(body, path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_bad_backbone_checkpoints_are_one_config_error_line(tmp_path):
    body = ResNetBody("resnet14", base_width=8)
    before = {k: v.clone() for k, v in body.state_dict().items()}
    good = tmp_path / "good.pt"
    torch.save(ResNet("resnet14", base_width=8).state_dict(), good)
    tampered = tmp_path / "tampered.pt"
    data = bytearray(good.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    data = data[: len(data) - 100]
    tampered.write_bytes(bytes(data))
    assert "not a torch state dict" in one_line_config_error(body, tampered)
    deeper = tmp_path / "resnet26.pt"
    torch.save(ResNet("resnet26", base_width=8).state_dict(), deeper)
    message = one_line_config_error(body, deeper)
    assert "unexpected" in message and "stages.0.1." in message and "resnet14" in message
    wider = tmp_path / "wide.pt"
    torch.save(ResNet("resnet14", base_width=16).state_dict(), wider)
    assert "wrong shape of" in one_line_config_error(body, wider)
    partial = tmp_path / "partial.pt"
    torch.save({k: v for k, v in ResNet("resnet14", base_width=8).state_dict().items()
                if not k.startswith("stages.3.")}, partial)
    assert "missing" in one_line_config_error(body, partial)
    assert "unreadable" in one_line_config_error(body, tmp_path / "absent.pt")
    after = body.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # nothing half-loaded


# -------------------------------------------------------------------------------- anchors

def test_cell_anchors_are_the_references():
    # generate_anchors(4, (32,), (0.5, 1, 2)) and the classic Detectron stride-16 set.
    assert cell_anchors(4, 32, (0.5, 1, 2)).tolist() == [
        [-22, -10, 25, 13], [-14, -14, 17, 17], [-10, -22, 13, 25]]
    assert cell_anchors(16, 128, (0.5, 1, 2)).tolist() == [
        [-84, -40, 99, 55], [-56, -56, 71, 71], [-36, -80, 51, 95]]


def test_anchor_grid_and_visibility_for_a_small_image():
    gen = AnchorGenerator()
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]    # a 64 x 64 batch at strides 4..64
    anchors = gen.grid_anchors(sizes)
    assert [tuple(a.shape) for a in anchors] == [(768, 4), (192, 4), (48, 4), (12, 4), (3, 4)]
    # P3, row 1, column 2, ratio 1: the cell anchor (-28, -28, 35, 35) shifted by (16, 8).
    assert anchors[1][(1 * 8 + 2) * 3 + 1].tolist() == [-12, -20, 51, 43]
    # P2 in a 64 x 64 image: ratio 1 fits for shifts 16..44 on both axes (8 x 8); ratio 0.5
    # for x shifts 24..36 (4) and y shifts 12..48 (10); ratio 2 transposed: 64 + 40 + 40.
    assert int(gen.visible(anchors[0], (64, 64)).sum()) == 144
    # A 48-high image padded to 64: ratio 1 keeps y shifts 16..28 (4): 32; ratio 0.5 y 12..32
    # (6): 24; ratio 2 needs y >= 22 and y + 25 < 48: none.
    assert int(gen.visible(anchors[0], (48, 64)).sum()) == 56
    assert int(gen.visible(anchors[4], (64, 64)).sum()) == 0     # 512-pixel anchors
    everything = AnchorGenerator(straddle_thresh_px=-1)
    assert bool(everything.visible(anchors[4], (64, 64)).all())


def test_level_mapping_on_hand_picked_boxes():
    def square(side: float) -> list[float]:
        return [10, 10, 10 + side, 10 + side]

    boxes = torch.tensor([square(224), square(112), square(111), square(448), square(447),
                          square(10), square(2000), [0, 0, 224, 56], [0, 0, 0, 0]])
    assert map_levels(boxes).tolist() == [4, 3, 2, 5, 4, 2, 5, 3, 2]


def test_pooler_reads_each_box_from_its_level_without_alignment():
    torch.manual_seed(0)
    features = [torch.randn(2, 4, 256 // 2 ** i, 256 // 2 ** i) for i in range(4)]
    boxes = [torch.tensor([[10.0, 20, 234, 244], [5, 5, 55, 45]]),
             torch.tensor([[0.0, 0, 500, 500]])]
    pooled = MultiScaleRoIAlign(7)(features, boxes)
    assert pooled.shape == (3, 4, 7, 7)
    # 224 x 224 -> P4 (scale 1/16), 50 x 40 -> P2 (1/4), 500 x 500 -> P5 (1/32), image 1.
    cases = [(features[2][:1], boxes[0][0], 1 / 16), (features[0][:1], boxes[0][1], 1 / 4),
             (features[3][1:], boxes[1][0], 1 / 32)]
    for row, (feature, box, scale) in enumerate(cases):
        want = ops.roi_align(feature, [box[None]], 7, scale, 2, aligned=False)
        assert torch.allclose(pooled[row], want[0])
        aligned = ops.roi_align(feature, [box[None]], 7, scale, 2, aligned=True)
        assert not torch.allclose(pooled[row], aligned[0])
    empty = MultiScaleRoIAlign(7)(features, [torch.zeros(0, 4), torch.zeros(0, 4)])
    assert empty.shape == (0, 4, 7, 7)


def test_mask_targets_and_loss_by_hand():
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 8:40, 16:48] = 1         # object 0: x 16..48, y 8..40
    masks[1, 50:60, 0:10] = 1
    proposals = torch.tensor([[16.0, 8, 48, 40], [16, 8, 80, 40]])
    targets = mask_targets(masks, torch.tensor([0, 0]), proposals, 28)
    assert targets.shape == (2, 28, 28)
    assert bool((targets[0] == 1).all())              # the proposal is the object
    assert bool((targets[1][:, :14] == 1).all()) and bool((targets[1][:, 14:] == 0).all())
    logits = torch.full((2, 3, 28, 28), -20.0)
    logits[:, 2] = torch.where(targets > 0, 20.0, -20.0)
    assert mask_loss(logits, torch.tensor([2, 2]), targets) < 1e-6     # its class's channel
    assert mask_loss(logits, torch.tensor([1, 1]), targets) > 5
    none = mask_loss(logits[:0].requires_grad_(), torch.zeros(0, dtype=torch.int64),
                     targets[:0])
    assert none.item() == 0 and none.requires_grad


def test_detections_are_thresholded_suppressed_per_class_and_capped():
    heads = RoIHeads(8, 2, detections_per_img=3)
    box = [10.0, 10, 50, 50]
    overlapping = [12.0, 10, 52, 50]                   # IoU 38/42 with box
    elsewhere = [60.0, 60, 90, 90]
    boxes = torch.tensor([[box, box, box], [overlapping] * 3, [elsewhere] * 3,
                          [box, box, box]])
    scores = torch.tensor([[0.1, 0.6, 0.3], [0.3, 0.5, 0.2], [0.55, 0.4, 0.05],
                           [0.97, 0.02, 0.01]])
    kept = heads.filter_detections(boxes, scores, (80, 80))
    # Class 1: 0.6 (box) suppresses 0.5 (overlapping); 0.4 elsewhere stays. Class 2: 0.3 box
    # suppresses 0.2 overlapping; 0.05 and below are dropped. Best 3 by score.
    assert kept["scores"].tolist() == pytest.approx([0.6, 0.4, 0.3])
    assert kept["labels"].tolist() == [1, 1, 2]
    assert kept["boxes"].tolist() == [box, [60, 60, 80, 80], box]     # clipped to 80 x 80
    heads.detections_per_img = 2
    assert heads.filter_detections(boxes, scores, (80, 80))["scores"].tolist() == \
        pytest.approx([0.6, 0.4])


# ------------------------------------------------------------------------------- matching

def test_rpn_anchor_targets_by_hand():
    matcher = ops.Matcher(0.7, 0.3, allow_low_quality_matches=True)
    coder = ops.BoxCoder((1.0, 1.0, 1.0, 1.0))
    gt = torch.tensor([[10.0, 10, 50, 50], [100, 100, 120, 140]])
    anchors = torch.tensor([
        [10.0, 10, 50, 50],     # the first ground truth: positive, zero target
        [10, 10, 50, 30],       # IoU 0.5 with it: between the thresholds, ignored
        [200, 200, 240, 240],   # touches nothing: background
        [100, 100, 120, 125],   # IoU 0.625 with the second, its best: low-quality positive
        [10, 10, 50, 50],       # a perfect match, but outside the image: ignored
    ])
    visible = torch.tensor([True, True, True, True, False])
    labels, targets = anchor_targets(anchors, visible, gt, matcher, coder)
    assert labels.tolist() == [1, -1, 0, 1, -1]
    assert torch.equal(targets[0], torch.zeros(4))
    # Centre y 112.5 -> 120 over a 25-pixel height, height 25 -> 40: (0, 0.3, 0, log 1.6).
    assert targets[3].tolist() == pytest.approx([0, 7.5 / 25, 0, math.log(40 / 25)])
    no_gt, _ = anchor_targets(anchors, visible, torch.zeros(0, 4), matcher, coder)
    assert no_gt.tolist() == [0, 0, 0, 0, -1]


def test_roi_proposal_targets_by_hand():
    matcher = ops.Matcher(0.5, 0.5, allow_low_quality_matches=False)
    coder = ops.BoxCoder((10.0, 10.0, 5.0, 5.0))
    gt = torch.tensor([[0.0, 0, 40, 40], [60, 60, 100, 100]])
    proposals = torch.tensor([[60.0, 60, 100, 100], [0, 0, 40, 18], [0, 0, 40, 20],
                              [4, 0, 44, 40]])
    labels, targets, rows = proposal_targets(proposals, gt, torch.tensor([7, 3]), matcher, coder)
    # IoU 18/40 < 0.5: background; 20/40 = 0.5: foreground (no ignored band at 0.5 / 0.5).
    assert labels.tolist() == [3, 0, 7, 7]
    assert rows.tolist() == [1, 0, 0, 0]
    assert torch.equal(targets[0], torch.zeros(4))
    assert targets[3].tolist() == pytest.approx([-10 * 4 / 40, 0, 0, 0])


# ------------------------------------------------------------------------------ the model

def test_training_step_losses_and_gradients():
    image, target = planted(96, 96, box=(20, 30, 70, 80))
    model = tiny_model(3, image)
    model.train()
    losses = model([image], [target])
    assert set(losses) == LOSSES
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    assert losses["loss_mask"] > 0 and losses["loss_classifier"] > 0
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None, name
            assert name.startswith(("backbone.body.stem.", "backbone.body.stages.0.")), name
    # Gradients reach the trainable body through the FPN and RoIAlign, not just the heads.
    for part in (model.backbone.body.stages[1], model.backbone.fpn, model.rpn.head,
                 model.roi_heads.box_head, model.roi_heads.mask_head):
        assert any(p.grad.abs().sum() > 0 for p in part.parameters())
    assert sum(1 for p in model.parameters() if not p.requires_grad) > 0


def test_an_image_without_objects_trains_as_background():
    image, target = planted(64, 64, box=(8, 8, 40, 40))
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)}
    model = tiny_model(3, image)
    model.train()
    losses = model([image, torch.rand(3, 64, 64)], [target, empty])
    assert all(torch.isfinite(v) for v in losses.values())
    losses = model([torch.rand(3, 64, 64)], [empty])
    assert losses["loss_mask"].item() == 0 and losses["loss_box_reg"].item() == 0
    sum(losses.values()).backward()


def test_rpn_keeps_the_top_proposals_per_batch_in_training():
    images = [planted(64, 64, seed=s, box=(10, 10, 40, 40))[0] for s in (1, 2)]
    targets = [planted(64, 64, box=(10, 10, 40, 40))[1] for _ in images]
    model = tiny_model(3, rpn_fpn_post_nms_top_n_train=50, rpn_fpn_post_nms_top_n_test=20)
    batch, sizes = batch_images(images, model.pixel_mean)
    with torch.no_grad():
        features = model.backbone(batch)
        model.train()
        proposals, losses = model.rpn(features, sizes, targets)
        # 50 over the whole batch (FPN_POST_NMS_TOP_N_TRAIN, v0.5), then each image's GT box.
        assert sum(len(p) - 1 for p in proposals) == 50
        assert all(torch.equal(p[-1], t["boxes"][0]) for p, t in zip(proposals, targets))
        assert set(losses) == {"loss_objectness", "loss_rpn_box_reg"}
        model.eval()
        proposals, losses = model.rpn(features, sizes)
    assert [len(p) for p in proposals] == [20, 20] and losses == {}
    for p in proposals:
        assert p.min() >= 0 and p[:, 2].max() <= 64 and p[:, 3].max() <= 64


def test_eval_outputs_per_image_at_the_input_size():
    images = [planted(70, 90)[0], planted(64, 64, box=(8, 8, 40, 40))[0]]
    model = tiny_model(3, images[0])
    model.eval()
    with torch.no_grad():
        results = model(images)
    assert len(results) == 2
    for result, image in zip(results, images):
        n = len(result["boxes"])
        assert 0 < n <= 100
        assert set(result) == {"boxes", "labels", "scores", "masks"}
        assert result["boxes"].shape == (n, 4) and result["scores"].shape == (n,)
        assert result["masks"].shape == (n, 1, *image.shape[1:])
        assert result["labels"].dtype == torch.int64
        assert 1 <= result["labels"].min() and result["labels"].max() <= 3
        assert (result["scores"] > 0.05).all()
        assert (result["scores"][:-1] >= result["scores"][1:]).all()
        assert 0 <= result["masks"].min() and result["masks"].max() <= 1
        assert result["boxes"][:, 2].max() <= image.shape[2]
        assert result["boxes"][:, 3].max() <= image.shape[1]


def test_an_image_without_proposals_gives_no_detections_not_a_crash():
    """A trained backbone can leave an image with no proposal at all (seen with a ResNet
    checkpoint on a tiny COCO); the heads must answer with empty detections."""
    from references.maskrcnn.model import batch_images

    image = planted(64, 64)[0]
    model = tiny_model(3, image)
    model.eval()
    with torch.no_grad():
        batch, sizes = batch_images([image], model.pixel_mean)
        features = model.backbone(batch)
        (result,), losses = model.roi_heads(features, [torch.zeros(0, 4)], sizes, None)
    assert losses == {}
    assert result["boxes"].shape == (0, 4) and result["labels"].shape == (0,)
    assert result["masks"].shape == (0, 1, 64, 64)


def test_a_small_variant_overfits_one_image():
    start = time.perf_counter()
    image, target = planted()
    model = tiny_model(3, image)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    model.train()
    history = []
    for _ in range(30):
        loss = sum(model([image], [target]).values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        history.append(loss.item())
    assert sum(history[-5:]) / 5 <= 0.5 * history[0], history
    model.eval()
    with torch.no_grad():
        best = model([image])[0]
    assert best["labels"][0] == 2
    assert ops.box_iou(best["boxes"][:1], target["boxes"]).item() > 0.5
    mask = best["masks"][0, 0] > 0.5
    overlap = (mask & target["masks"][0].bool()).sum() / (mask | target["masks"][0].bool()).sum()
    assert overlap > 0.5
    assert time.perf_counter() - start < 60   # ~10 s on one free core
