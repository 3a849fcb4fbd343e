"""The RoI heads: box classification and regression, then masks (maskrcnn-benchmark
modeling/roi_heads: box_head/{roi_box_feature_extractors, roi_box_predictors, loss, inference}.py
and mask_head/, with MODEL.ROI_HEADS / ROI_BOX_HEAD / ROI_MASK_HEAD of e2e_mask_rcnn_R_50_FPN_1x).

Training (FastRCNNLossComputation): the RPN's proposals (ground truth appended) are matched to
the ground truth at FG_IOU_THRESHOLD 0.5 / BG_IOU_THRESHOLD 0.5 (no low-quality matches);
BATCH_SIZE_PER_IMAGE 512 are sampled per image, POSITIVE_FRACTION 0.25 of them objects. The box
head pools 7 x 7 (sampling 2), runs two 1024-wide fully connected layers (MLP_HEAD_DIM) and
predicts NUM_CLASSES scores (background + K) and class-specific deltas (weights 10, 10, 5, 5).
loss_classifier is the cross-entropy over the sampled RoIs (mean); loss_box_reg the smooth L1
(beta 1) of the ground-truth class's deltas on the positives, summed and divided by the number
of sampled RoIs. The mask branch (mask_head.py) trains on the positive sampled RoIs.

Inference (PostProcessor): softmax scores, every class's decoded box clipped to the image,
scores > SCORE_THRESH 0.05 kept, NMS 0.5 per class, the DETECTIONS_PER_IMG 100 best kept
(ordered by score; the reference keeps ties at the 100th score and orders by class); masks are
then predicted for those boxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from references.maskrcnn import ops
from references.maskrcnn.mask_head import MaskHead, mask_loss, mask_targets, paste_masks
from references.maskrcnn.pooler import MultiScaleRoIAlign

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)          # MODEL.ROI_HEADS.BBOX_REG_WEIGHTS
BOX_SMOOTH_L1_BETA = 1.0


class TwoMLPHead(nn.Module):
    """FPN2MLPFeatureExtractor's fc6, fc7 with ReLU; make_fc init: kaiming_uniform_(a=1), 0."""

    def __init__(self, in_features: int, representation_size: int = 1024) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)
        for fc in (self.fc6, self.fc7):
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class BoxPredictor(nn.Module):
    """FPNPredictor: class logits [R, num_classes] and deltas [R, 4 * num_classes];
    weights N(0, 0.01) and N(0, 0.001), biases 0."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


def proposal_targets(proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
                     matcher: ops.Matcher, box_coder: ops.BoxCoder
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """One image's RoI labels (int64: class, 0 background, -1 ignored), regression targets
    [R, 4] and matched ground-truth rows (clamped to >= 0; meaningful where label > 0)."""
    if gt_boxes.numel() == 0:
        count = proposals.shape[0]
        zeros = torch.zeros(count, dtype=torch.int64, device=proposals.device)
        return zeros, torch.zeros_like(proposals), zeros.clone()
    matched = matcher(ops.box_iou(gt_boxes, proposals))
    rows = matched.clamp(min=0)
    labels = gt_labels[rows].to(torch.int64)
    labels[matched == ops.Matcher.BELOW_LOW_THRESHOLD] = 0
    labels[matched == ops.Matcher.BETWEEN_THRESHOLDS] = -1
    return labels, box_coder.encode_single(gt_boxes[rows], proposals), rows


class RoIHeads(nn.Module):
    """Features [P2..P6] + proposals -> detections per image (eval) or the three losses."""

    def __init__(self, channels: int, num_classes: int, *, representation_size: int = 1024,
                 batch_size_per_image: int = 512, positive_fraction: float = 0.25,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100, box_pool_size: int = 7,
                 mask_pool_size: int = 14, sampling_ratio: int = 2,
                 mask_conv_channels: Sequence[int] = (256, 256, 256, 256)) -> None:
        """``num_classes`` is K, the object classes (labels 1..K); the predictors have K + 1
        outputs with background's at 0, the reference's MODEL.ROI_BOX_HEAD.NUM_CLASSES (81 for
        COCO's 80)."""
        super().__init__()
        self.num_classes = num_classes
        self.box_pool = MultiScaleRoIAlign(box_pool_size, sampling_ratio=sampling_ratio)
        self.box_head = TwoMLPHead(channels * box_pool_size ** 2, representation_size)
        self.box_predictor = BoxPredictor(representation_size, num_classes + 1)
        self.mask_pool = MultiScaleRoIAlign(mask_pool_size, sampling_ratio=sampling_ratio)
        self.mask_head = MaskHead(channels, num_classes + 1, mask_conv_channels)
        self.mask_resolution = 2 * mask_pool_size
        self.box_coder = ops.BoxCoder(BOX_WEIGHTS)
        self.matcher = ops.Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.sampler = ops.BalancedPositiveNegativeSampler(batch_size_per_image,
                                                           positive_fraction)
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img = detections_per_img

    def forward(self, features: Sequence[Tensor], proposals: Sequence[Tensor],
                image_sizes: Sequence[tuple[int, int]],
                targets: Sequence[Mapping[str, Tensor]] | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("the RoI heads need targets in training mode")
            return [], self.losses(features, proposals, targets)
        return self.detect(features, proposals, image_sizes), {}

    def sample(self, proposals: Sequence[Tensor], targets: Sequence[Mapping[str, Tensor]]
               ) -> tuple[list[Tensor], Tensor, Tensor, list[Tensor]]:
        """The sampled RoIs per image, their labels and regression targets (all images
        together), and per image the matched ground-truth rows."""
        per_image = [proposal_targets(p, t["boxes"].to(p), t["labels"], self.matcher,
                                      self.box_coder) for p, t in zip(proposals, targets)]
        positive, negative = self.sampler([labels for labels, _, _ in per_image])
        rois, labels, regression, matched = [], [], [], []
        for p, (lab, reg, rows), pos, neg in zip(proposals, per_image, positive, negative):
            keep = torch.where((pos | neg).bool())[0]
            rois.append(p[keep])
            labels.append(lab[keep])
            regression.append(reg[keep])
            matched.append(rows[keep])
        return rois, torch.cat(labels), torch.cat(regression), matched

    def losses(self, features: Sequence[Tensor], proposals: Sequence[Tensor],
               targets: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
        with torch.no_grad():
            rois, labels, regression, matched = self.sample([p.detach() for p in proposals],
                                                            targets)
        logits, deltas = self.box_predictor(self.box_head(self.box_pool(features, rois)))
        positive = torch.where(labels > 0)[0]
        deltas = deltas.reshape(deltas.shape[0], -1, 4)[positive, labels[positive]]
        box_loss = F.smooth_l1_loss(deltas, regression[positive], beta=BOX_SMOOTH_L1_BETA,
                                    reduction="sum") / max(labels.numel(), 1)

        # Masks: only the positive RoIs, each against its matched object's mask.
        counts = [len(r) for r in rois]
        per_image_labels = labels.split(counts)
        pos_rois, pos_labels, pos_targets = [], [], []
        for r, lab, rows, target in zip(rois, per_image_labels, matched, targets):
            pos = torch.where(lab > 0)[0]
            pos_rois.append(r[pos])
            pos_labels.append(lab[pos])
            pos_targets.append(mask_targets(target["masks"], rows[pos], r[pos],
                                            self.mask_resolution))
        mask_logits = self.mask_head(self.mask_pool(features, pos_rois))
        return {"loss_classifier": F.cross_entropy(logits, labels),
                "loss_box_reg": box_loss,
                "loss_mask": mask_loss(mask_logits, torch.cat(pos_labels), torch.cat(pos_targets))}

    def detect(self, features: Sequence[Tensor], proposals: Sequence[Tensor],
               image_sizes: Sequence[tuple[int, int]]) -> list[dict[str, Tensor]]:
        logits, deltas = self.box_predictor(self.box_head(self.box_pool(features, proposals)))
        scores = F.softmax(logits, -1).split([len(p) for p in proposals])
        # [R, classes, 4]; classes spelled out, so no proposals at all (R = 0) reshapes too
        boxes = self.box_coder.decode(deltas, proposals)
        boxes = boxes.reshape(len(deltas), deltas.shape[1] // 4, 4)
        boxes = boxes.split([len(p) for p in proposals])
        results = [self.filter_detections(b, s, size)
                   for b, s, size in zip(boxes, scores, image_sizes)]
        mask_logits = self.mask_head(self.mask_pool(features, [r["boxes"] for r in results]))
        for result, logits_i, size in zip(results, mask_logits.split([len(r["boxes"])
                                                                      for r in results]),
                                          image_sizes):
            result["masks"] = paste_masks(logits_i, result["labels"], result["boxes"], size)
        return results

    def filter_detections(self, boxes: Tensor, scores: Tensor, image_size: tuple[int, int]
                          ) -> dict[str, Tensor]:
        """One image: boxes [R, classes, 4] and scores [R, classes] -> the kept detections."""
        boxes = ops.clip_boxes_to_image(boxes, image_size)[:, 1:].reshape(-1, 4)
        classes = scores.shape[1]
        labels = torch.arange(1, classes, device=scores.device).repeat(scores.shape[0])
        scores = scores[:, 1:].reshape(-1)
        keep = torch.where(scores > self.score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = ops.batched_nms(boxes, scores, labels, self.nms_thresh)[:self.detections_per_img]
        return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}
