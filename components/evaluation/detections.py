"""One image's detections as arrays, and matching two sets of them: the one home of matching detections.

Two users: the TFLite converter's parity check (a SavedModel's detections
against its TFLite model's, `unmatched`) and the model server's shadow
mirror (a stable version's detections against a candidate's, `match`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

# The score from which a detection is shown to people and compared: `detx predict`, the web page and
# the shadow mirror (which compares what people would see). One home: the CLI's --min-score reads it too.
MIN_SCORE = 0.3


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


@dataclasses.dataclass(frozen=True)
class Matching:
    """How two sets of detections agree.

    Attributes:
        matched: pairs matched one to one.
        only_reference: reference detections nothing matched.
        only_candidate: candidate detections nothing matched.
        score_differences: |reference score - candidate score| of each matched pair.
    """

    matched: int = 0
    only_reference: int = 0
    only_candidate: int = 0
    score_differences: tuple[float, ...] = ()

    @property
    def agreement(self) -> float:
        """The share of detections both sides found: matched / (matched + only_reference + only_candidate).

        1.0 when neither side found anything. E.g. 3 matched, 1 only in the reference and 0 only in the candidate: 0.75.
        """
        total = self.matched + self.only_reference + self.only_candidate
        return 1.0 if total == 0 else self.matched / total

    def __add__(self, other: Matching) -> Matching:
        """Both matchings' counts (several images of one request)."""
        return Matching(
            self.matched + other.matched,
            self.only_reference + other.only_reference,
            self.only_candidate + other.only_candidate,
            self.score_differences + other.score_differences,
        )


def _pairs(
    reference: Detections, candidate: Detections, min_iou: float, score_tolerance: float, closest_score: bool
) -> list[int | None]:
    """For each reference detection, the index of the candidate detection it is matched to (None: none).

    Reference detections take their pick best first; each picks among the free
    candidate detections of its class with IoU >= `min_iou` and a score within
    `score_tolerance`, the closest-scoring one (`closest_score`) or the most
    overlapping one.
    """
    free = np.ones(len(candidate), bool)
    pairs: list[int | None] = [None] * len(reference)
    for i in np.argsort(-reference.scores, kind="stable"):
        ok = free & (candidate.classes == reference.classes[i])
        ok &= np.abs(candidate.scores - reference.scores[i]) <= score_tolerance
        if not ok.any():
            continue
        overlap = iou(reference.boxes[i], candidate.boxes)
        ok &= overlap >= min_iou
        if not ok.any():
            continue
        key = np.abs(candidate.scores - reference.scores[i]) if closest_score else -overlap
        choice = int(np.argmin(np.where(ok, key, np.inf)))
        free[choice] = False
        pairs[int(i)] = choice
    return pairs


def match(reference: Detections, candidate: Detections, min_score: float, min_iou: float = 0.5) -> Matching:
    """Matches two detectors' detections of one image one to one, by class, at IoU >= `min_iou`.

    Only detections scoring at least `min_score` take part. Reference
    detections pick best first, each the most overlapping free candidate
    detection of its class. E.g. a reference box of class 1 at 0.9 and a
    candidate box of class 1 at 0.7 with IoU 0.6 are one matched pair with a
    score difference of 0.2; had the candidate called it class 2, each side
    would have one detection the other did not find.
    """
    reference, candidate = reference.above(min_score), candidate.above(min_score)
    pairs = _pairs(reference, candidate, min_iou, np.inf, closest_score=False)
    differences = tuple(
        float(abs(reference.scores[i] - candidate.scores[j])) for i, j in enumerate(pairs) if j is not None
    )
    return Matching(len(differences), len(reference) - len(differences), len(candidate) - len(differences), differences)


def unmatched(reference: Detections, candidate: Detections, min_iou: float, score_tolerance: float) -> list[int]:
    """Indices of `reference` detections that no `candidate` detection matches, one to one.

    A match has the same class, IoU >= `min_iou` and a score within
    `score_tolerance`. Reference detections are matched best first, each to the
    closest-scoring free candidate that qualifies, so near-ties listed in another
    order (TensorFlow's and TFLite's sorts break them differently) still match.
    """
    pairs = _pairs(reference, candidate, min_iou, score_tolerance, closest_score=True)
    return [i for i, j in enumerate(pairs) if j is None]
