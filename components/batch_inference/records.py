"""The one format of a batch-inference result: one JSON line per image, read by the review queue.

`detx infer` writes `predictions-SSSSS-of-NNNNN.jsonl` shards of `ImagePrediction` lines and
`skipped.jsonl` of `SkippedImage` lines; `components/review` reads both through this module.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from detx.components.evaluation.detections import Detections


@dataclasses.dataclass(frozen=True)
class BoxPrediction:
    """One detection.

    Attributes:
        label: the label map's name of `class_id`.
        class_id: 1-based label id (the Zoo's convention, as the SavedModel answers).
        score: confidence in [0, 1].
        box: normalized (ymin, xmin, ymax, xmax) of the upright (EXIF-applied) image.
    """

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class ImagePrediction:
    """One image's detections, best first.

    Attributes:
        file: the image's path relative to the input root (posix separators).
        width: upright width in pixels.
        height: upright height in pixels.
        detections: every detection the model returned, best first.
    """

    file: str
    width: int
    height: int
    detections: tuple[BoxPrediction, ...]

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ImagePrediction:
        """Parses a line written by `to_json`."""
        value: dict[str, Any] = json.loads(line)
        return cls(
            file=str(value["file"]),
            width=int(value["width"]),
            height=int(value["height"]),
            detections=tuple(
                BoxPrediction(
                    label=str(d["label"]),
                    class_id=int(d["class_id"]),
                    score=float(d["score"]),
                    box=(float(d["box"][0]), float(d["box"][1]), float(d["box"][2]), float(d["box"][3])),
                )
                for d in value["detections"]
            ),
        )

    def as_detections(self) -> Detections:
        """The arrays `components/evaluation/detections.py` matches."""
        return Detections(
            boxes=np.array([d.box for d in self.detections], dtype=np.float32).reshape(-1, 4),
            classes=np.array([d.class_id for d in self.detections], dtype=np.int64),
            scores=np.array([d.score for d in self.detections], dtype=np.float32),
        )


@dataclasses.dataclass(frozen=True)
class SkippedImage:
    """An image the job could not score, and why (`detx infer` counts these; they never stop it)."""

    file: str
    reason: str

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> SkippedImage:
        """Parses a line written by `to_json`."""
        value = json.loads(line)
        return cls(file=str(value["file"]), reason=str(value["reason"]))


def read_lines(lines: Iterable[str]) -> Iterator[ImagePrediction]:
    """Parses prediction lines, skipping blank ones."""
    for line in lines:
        if line.strip():
            yield ImagePrediction.from_json(line)
