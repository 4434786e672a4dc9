"""COCOeval's bbox matching and accumulation, step for step, in NumPy: the core of the TFMA COCO metric.

Everything here follows pycocotools' `cocoeval.py` (`COCOeval.evaluateImg`
and `COCOeval.accumulate`; `Params.setDetParams` for the IoU thresholds,
recall points and area ranges), so the numbers agree with pycocotools
(tests/components/evaluation/test_tfma_coco.py checks it to 1e-9).
"""

from __future__ import annotations

import dataclasses

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100
# COCO's object sizes in pixels of area, both ends inclusive as in COCOeval
# (`Params.setDetParams`: areaRng [0, 1e5**2], [0, 32**2], [32**2, 96**2], [96**2, 1e5**2]).
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
SIZES = ("small", "medium", "large")


def iou(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """[D, G] IoU of [ymin, xmin, ymax, xmax] boxes; a crowd box counts intersection over the detection's area."""
    if len(dets) == 0 or len(gts) == 0:
        return np.zeros((len(dets), len(gts)))
    top = np.maximum(dets[:, None, 0], gts[None, :, 0])
    left = np.maximum(dets[:, None, 1], gts[None, :, 1])
    bottom = np.minimum(dets[:, None, 2], gts[None, :, 2])
    right = np.minimum(dets[:, None, 3], gts[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area_d = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    area_g = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    union = np.where(crowd[None, :], area_d[:, None], area_d[:, None] + area_g[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def outside(areas: np.ndarray, area_range: str) -> np.ndarray:
    """Which of `areas` (pixels) fall outside a COCO area range ("all", "small", "medium", "large")."""
    low, high = AREA_RANGES[area_range]
    return (areas < low) | (areas > high)


def match_image(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_crowd: np.ndarray,
    gt_ignore: np.ndarray | None = None,
    det_outside: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval's greedy matching of one image's detections of one class, at every IoU threshold at once.

    Args:
        det_boxes: [D, 4] detections.
        det_scores: [D] their scores.
        gt_boxes: [G, 4] ground truth of the same class.
        gt_crowd: [G] is-crowd flags (a crowd box absorbs any number of detections).
        gt_ignore: [G] boxes that count neither way (COCOeval's `_ignore`: crowd,
            or outside the area range); default: the crowd boxes.
        det_outside: [D] detections outside the area range: ignored when unmatched.

    Returns:
        scores [D'] (the top 100 by score, in score order), matched [T, D'] and
        ignored [T, D'] (matched to an ignored box, or unmatched outside the area
        range: neither true nor false positive).
    """
    ignore = gt_crowd if gt_ignore is None else gt_ignore
    order = np.argsort(-det_scores, kind="mergesort")[:MAX_DETECTIONS]
    det_boxes, det_scores = det_boxes[order], det_scores[order]
    num_t, num_d = len(IOU_THRESHOLDS), len(det_boxes)
    matched = np.zeros((num_t, num_d), dtype=bool)
    ignored = np.zeros((num_t, num_d), dtype=bool)
    if num_d and len(gt_boxes):
        ious = iou(det_boxes, gt_boxes, gt_crowd)
        taken = np.zeros((num_t, len(gt_boxes)), dtype=bool)
        threshold = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
        for i in range(num_d):
            # A crowd region can absorb any number of detections; any other box only one.
            candidates = (ious[i][None, :] >= threshold) & (~taken | gt_crowd[None, :])
            real = candidates & ~ignore[None, :]
            # COCOeval sorts ignored boxes last and stops at them once a real box matched.
            use = np.where(real.any(axis=1, keepdims=True), real, candidates)
            found = use.any(axis=1)
            best = np.argmax(np.where(use, ious[i][None, :], -1.0), axis=1)
            matched[:, i] = found
            ignored[:, i] = found & ignore[best]
            rows = np.nonzero(found & ~gt_crowd[best])[0]
            taken[rows, best[rows]] = True
    if det_outside is not None and num_d:
        ignored |= ~matched & det_outside[order][None, :]
    return det_scores, matched, ignored


@dataclasses.dataclass
class ClassAccumulator:
    """One class's (and area range's) matches over many images."""

    scores: list[np.ndarray] = dataclasses.field(default_factory=list)
    matched: list[np.ndarray] = dataclasses.field(default_factory=list)
    ignored: list[np.ndarray] = dataclasses.field(default_factory=list)
    num_gt: int = 0  # boxes that count for recall (not ignored)

    def add(self, scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: int) -> None:
        """Adds one image's `match_image` result and its count of boxes that are not ignored."""
        self.scores.append(scores)
        self.matched.append(matched)
        self.ignored.append(ignored)
        self.num_gt += num_gt

    def merge(self, other: ClassAccumulator) -> None:
        """Adds another accumulator's images."""
        self.scores += other.scores
        self.matched += other.matched
        self.ignored += other.ignored
        self.num_gt += other.num_gt


def class_curves(acc: ClassAccumulator) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's `accumulate` for one class: AP per IoU threshold [T] and recall [T] (-1 without ground truth)."""
    num_t = len(IOU_THRESHOLDS)
    if acc.num_gt == 0:
        return np.full(num_t, -1.0), np.full(num_t, -1.0)
    if not acc.scores:
        return np.zeros(num_t), np.zeros(num_t)
    scores = np.concatenate(acc.scores)
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate(acc.matched, axis=1)[:, order]
    ignored = np.concatenate(acc.ignored, axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
    ap, recall = np.zeros(num_t), np.zeros(num_t)
    for t in range(num_t):
        rc = tp[t] / acc.num_gt
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        if len(rc) == 0:
            continue
        recall[t] = rc[-1]
        envelope = np.maximum.accumulate(pr[::-1])[::-1]
        idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        q = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
        ap[t] = q.mean()
    return ap, recall


def mean_valid(values: np.ndarray) -> float:
    """COCOeval's mean over classes with ground truth (-1 marks the others); NaN when there are none."""
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else float("nan")


def t50() -> int:
    """The index of IoU 0.5 in `IOU_THRESHOLDS`."""
    return int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
