"""One image's detections as arrays, and matching two sets of them (a SavedModel's and a TFLite model's)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Detections:
    """Detections of one image, best first.

    Attributes:
        boxes: [n, 4] normalized (ymin, xmin, ymax, xmax).
        classes: [n] 1-based label ids.
        scores: [n] confidences.
    """

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any], index: int = 0) -> Detections:
        """The `index`-th image of a detx signature's outputs (Zoo format: 1-based classes as floats)."""
        values = {k: np.asarray(v) for k, v in outputs.items()}
        n = int(values["num_detections"][index])
        return cls(
            boxes=values["detection_boxes"][index, :n].astype(np.float32),
            classes=np.rint(values["detection_classes"][index, :n]).astype(np.int64),
            scores=values["detection_scores"][index, :n].astype(np.float32),
        )

    def above(self, min_score: float) -> Detections:
        """The detections scoring at least `min_score`."""
        keep = self.scores >= min_score
        return Detections(self.boxes[keep], self.classes[keep], self.scores[keep])


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (ymin, xmin, ymax, xmax) box with each of [n, 4] boxes (0 where either has no area)."""
    ymin = np.maximum(box[0], boxes[:, 0])
    xmin = np.maximum(box[1], boxes[:, 1])
    ymax = np.minimum(box[2], boxes[:, 2])
    xmax = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ymax - ymin, 0, None) * np.clip(xmax - xmin, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where((union > 0) & (area > 0) & (areas > 0), inter / np.where(union > 0, union, 1), 0.0)


def unmatched(reference: Detections, candidate: Detections, min_iou: float, score_tolerance: float) -> list[int]:
    """Indices of `reference` detections that no `candidate` detection matches, one to one.

    A match has the same class, IoU >= `min_iou` and a score within
    `score_tolerance`. Reference detections are matched best first, each to the
    closest-scoring free candidate that qualifies, so near-ties listed in another
    order (TensorFlow's and TFLite's sorts break them differently) still match.
    """
    free = np.ones(len(candidate), bool)
    missing = []
    for i in range(len(reference)):
        ok = (
            free
            & (candidate.classes == reference.classes[i])
            & (np.abs(candidate.scores - reference.scores[i]) <= score_tolerance)
        )
        if ok.any():
            ok &= iou(reference.boxes[i], candidate.boxes) >= min_iou
        if not ok.any():
            missing.append(i)
            continue
        choice = int(np.argmin(np.where(ok, np.abs(candidate.scores - reference.scores[i]), np.inf)))
        free[choice] = False
    return missing
