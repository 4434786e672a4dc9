"""The review queue: the K predicted images most worth a person's time, each with its reasons.

Each image gets a priority in [0, 1] from each reason that applies, and its
highest one ranks it:

- uncertain: its most ambiguous detection (score s >= UNCERTAIN_FLOOR) gives
  1 - |2s - 1|: 0.5 gives 1.0, 0.95 gives 0.1.
- blank: no detection scores UNCERTAIN_FLOOR or more: BLANK_PRIORITY (an
  empty image, or objects the model cannot see; below any real doubt).
- disagreement (with a candidate's predictions): 1 - agreement of the two
  models' detections at `min_score` (`evaluation.detections.match`).
- rare_class: a detection at `min_score` or more of a class with under
  RARE_SHARE of the labelled boxes: 1 - share / RARE_SHARE (1.0 for a class
  never labelled).

Near-duplicates of labelled images (`dhash`: a dHash within
NEAR_DUPLICATE_BITS and thumbnails within NEAR_DUPLICATE_GREY) are not queued
(a person would label the same picture twice); they are listed with the image
they repeat.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detx.components.batch_inference.records import ImagePrediction
from detx.components.evaluation.detections import match
from detx.components.review import dhash
from detx.components.review.labelled import LabelledData

UNCERTAIN_FLOOR = 0.1
BLANK_PRIORITY = 0.5
RARE_SHARE = 0.05


@dataclasses.dataclass(frozen=True)
class Reason:
    """Why an image is worth reviewing.

    Attributes:
        kind: uncertain, blank, disagreement or rare_class.
        priority: how much it is worth, in [0, 1].
        text: the reason in words, for the table and the reviewer.
    """

    kind: str
    priority: float
    text: str


@dataclasses.dataclass(frozen=True)
class QueueItem:
    """One queued image: its prediction and its reasons, the strongest first."""

    prediction: ImagePrediction
    reasons: tuple[Reason, ...]

    @property
    def priority(self) -> float:
        """The strongest reason's priority."""
        return self.reasons[0].priority

    def to_json(self, rank: int) -> str:
        """One line of `queue.jsonl`."""
        value: dict[str, Any] = {
            "rank": rank,
            "file": self.prediction.file,
            "priority": round(self.priority, 4),
            "reasons": [dataclasses.asdict(r) | {"priority": round(r.priority, 4)} for r in self.reasons],
        }
        return json.dumps(value, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class NearDuplicate:
    """A predicted image left out because it repeats a labelled one."""

    file: str
    labelled_image: str
    bits: int
    grey: float


@dataclasses.dataclass(frozen=True)
class Queue:
    """The queue and what was left out.

    Attributes:
        items: the queued images, best first (at most K).
        near_duplicates: images left out as near-duplicates of labelled images.
        unreadable: images that could not be read to hash them (left out).
        considered: images ranked.
    """

    items: tuple[QueueItem, ...]
    near_duplicates: tuple[NearDuplicate, ...]
    unreadable: tuple[str, ...]
    considered: int


def _uncertainty(p: ImagePrediction) -> Reason:
    scores = [d.score for d in p.detections if d.score >= UNCERTAIN_FLOOR]
    if not scores:
        return Reason(
            "blank",
            BLANK_PRIORITY,
            f"no detection scores {UNCERTAIN_FLOOR:.2f} or more: empty, or objects the model cannot see",
        )
    s = min(scores, key=lambda v: abs(2 * v - 1))
    return Reason("uncertain", 1 - abs(2 * s - 1), f"least sure detection scores {s:.2f}")


def _disagreement(p: ImagePrediction, candidate: ImagePrediction, min_score: float) -> Reason | None:
    m = match(p.as_detections(), candidate.as_detections(), min_score)
    if m.agreement >= 1.0:
        return None
    return Reason(
        "disagreement",
        1 - m.agreement,
        f"models agree on {m.matched} of {m.matched + m.only_reference + m.only_candidate} detections "
        f"({m.only_reference} only served, {m.only_candidate} only candidate)",
    )


def _rare(p: ImagePrediction, boxes_per_class: Mapping[str, int], min_score: float) -> Reason | None:
    total = sum(boxes_per_class.values())
    best: Reason | None = None
    for label in {d.label for d in p.detections if d.score >= min_score}:
        count = boxes_per_class.get(label, 0)
        share = count / total if total else 0.0
        if share >= RARE_SHARE:
            continue
        reason = Reason(
            "rare_class",
            1 - share / RARE_SHARE,
            f"predicts {label}, {count} of {total} labelled boxes ({share:.1%})",
        )
        if best is None or reason.priority > best.priority:
            best = reason
    return best


def reasons(
    p: ImagePrediction,
    min_score: float,
    candidate: ImagePrediction | None = None,
    boxes_per_class: Mapping[str, int] | None = None,
) -> tuple[Reason, ...]:
    """Every reason to review one image, the strongest first."""
    found = [_uncertainty(p)]
    if candidate is not None:
        found.append(_disagreement(p, candidate, min_score))  # type: ignore[arg-type]
    if boxes_per_class is not None:
        found.append(_rare(p, boxes_per_class, min_score))  # type: ignore[arg-type]
    return tuple(sorted((r for r in found if r is not None), key=lambda r: -r.priority))


def build_queue(
    predictions: Sequence[ImagePrediction],
    k: int,
    min_score: float,
    images_root: str,
    candidate: Mapping[str, ImagePrediction] | None = None,
    labelled: LabelledData | None = None,
    progress: Callable[[int], None] | None = None,
) -> Queue:
    """Ranks every predicted image and takes the first K that are not near-duplicates of labelled images.

    Args:
        predictions: the served model's predictions.
        k: how many images to queue (>= 1).
        min_score: detections below it are not compared or counted as a class.
        images_root: where the predicted images are (their files are relative to it).
        candidate: a second model's predictions by file (the disagreement reason).
        labelled: the labelled data (the rare-class reason and near-duplicates).
        progress: called with the number of predicted images checked for near-duplicates, every 100.
    """
    if k < 1:
        raise ValueError(f"K must be 1 or more, got {k}")
    counts = labelled.boxes_per_class if labelled is not None else None
    ranked = sorted(
        (
            QueueItem(p, reasons(p, min_score, candidate.get(p.file) if candidate else None, counts))
            for p in predictions
        ),
        key=lambda item: (-item.priority, item.prediction.file),
    )
    index = dhash.Index(list(labelled.hashes)) if labelled is not None else None
    items: list[QueueItem] = []
    duplicates: list[NearDuplicate] = []
    unreadable: list[str] = []
    for n, item in enumerate(ranked, start=1):
        if len(items) == k:
            break
        if index and progress is not None and n % 100 == 0:
            progress(n)
        if index:
            # Fingerprinted in rank order, and only until K are queued: the rest never need reading.
            try:
                with open(os.path.join(images_root, item.prediction.file), "rb") as f:
                    found = index.near_duplicate(dhash.fingerprint(f.read()))
            except (OSError, ValueError):
                unreadable.append(item.prediction.file)
                continue
            if found is not None:
                duplicates.append(NearDuplicate(item.prediction.file, found[0], found[1], round(found[2], 2)))
                continue
        items.append(item)
    if unreadable and not items and not duplicates:
        raise ValueError(
            f"none of the predicted images could be read under {images_root} (e.g. {unreadable[0]}); "
            "give --images the folder detx infer read"
        )
    return Queue(tuple(items), tuple(duplicates), tuple(unreadable), len(ranked))


def table(queue: Queue) -> str:
    """The queue as a readable table: rank, priority, file and the strongest reason (others counted)."""
    width = max([len("file"), *(len(item.prediction.file) for item in queue.items)])
    lines = [f"{'#':>3}  {'priority':>8}  {'file':<{width}}  reason"]
    for rank, item in enumerate(queue.items, start=1):
        more = f" (+{len(item.reasons) - 1} more)" if len(item.reasons) > 1 else ""
        lines.append(f"{rank:>3}  {item.priority:>8.2f}  {item.prediction.file:<{width}}  {item.reasons[0].text}{more}")
    return "\n".join(lines)
