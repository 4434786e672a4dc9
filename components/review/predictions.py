"""Reads a batch-inference result folder (`detx infer --out DIR`) for review, refusing anything else by name.

The format is `components/batch_inference/records.py`'s: `predictions-*.jsonl`
shards of `ImagePrediction` lines and `skipped.jsonl` of `SkippedImage` lines.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any

from detx.components import storage
from detx.components.batch_inference.listing import MANIFEST, PREDICTIONS_PREFIX
from detx.components.batch_inference.outputs import COCO_IMAGES, SKIPPED, SUMMARY
from detx.components.batch_inference.records import ImagePrediction, SkippedImage

PREDICTIONS_GLOB = f"{PREDICTIONS_PREFIX}*.jsonl"


class ReviewError(ValueError):
    """Input the review commands cannot use; the message names the file, the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class PredictionSet:
    """One batch-inference result.

    Attributes:
        directory: the folder read.
        images: one prediction per scored image, sorted by file.
        skipped: the images the job could not score (listed by it, never reviewable here).
        input_root: the images folder the job read (its summary's), if it says.
        classes: (class id, name) of every class of the model (the job's COCO images file), if it says.
    """

    directory: str
    images: tuple[ImagePrediction, ...]
    skipped: tuple[SkippedImage, ...]
    input_root: str | None = None
    classes: tuple[tuple[int, str], ...] = ()

    def by_file(self) -> dict[str, ImagePrediction]:
        """The predictions keyed by their file (relative to the images root)."""
        return {p.file: p for p in self.images}


def _parse(path: str, number: int, line: str) -> ImagePrediction:
    try:
        prediction = ImagePrediction.from_json(line)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as e:
        raise ReviewError(
            f"{path}:{number} is not a detx infer prediction line ({type(e).__name__}: {e}); expected "
            '{"file", "width", "height", "detections": [{"label", "class_id", "score", "box"}]}. '
            "Give --predictions the --out folder of detx infer"
        ) from None
    if prediction.width <= 0 or prediction.height <= 0:
        raise ReviewError(f"{path}:{number}: {prediction.file} has size {prediction.width}x{prediction.height}")
    return prediction


def load_predictions(directory: str) -> PredictionSet:
    """Reads every prediction shard and the skipped list of a `detx infer` output folder.

    Raises:
        ReviewError: the folder is missing, holds no prediction shards, a line is
            not an `ImagePrediction`, or one image is predicted twice.
    """
    if not os.path.isdir(directory):
        raise ReviewError(f"--predictions {directory} is not a folder; give the --out folder of detx infer")
    shards = sorted(glob.glob(os.path.join(directory, PREDICTIONS_GLOB)))
    if not shards:
        raise ReviewError(
            f"{directory} holds no {PREDICTIONS_GLOB} files; give the --out folder of a finished detx infer run"
        )
    seen: dict[str, str] = {}
    images: list[ImagePrediction] = []
    for shard in shards:
        with open(shard, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                prediction = _parse(shard, number, line)
                if prediction.file in seen:
                    raise ReviewError(
                        f"{prediction.file} is predicted twice ({seen[prediction.file]} and {shard}); "
                        "--predictions must be one detx infer output"
                    )
                seen[prediction.file] = shard
                images.append(prediction)
    summary = _json(os.path.join(directory, SUMMARY))
    if summary is None and os.path.exists(os.path.join(directory, MANIFEST)):
        raise ReviewError(
            f"{directory} is an unfinished detx infer run (it has {MANIFEST} but no {SUMMARY}); run the same "
            "detx infer command again: it resumes and finishes"
        )
    skipped: list[SkippedImage] = []
    skipped_path = os.path.join(directory, SKIPPED)
    if os.path.exists(skipped_path):
        with open(skipped_path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        skipped.append(SkippedImage.from_json(line))
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        raise ReviewError(f"{skipped_path}:{number} is not a skipped-image line ({e})") from None
    if not images:
        raise ReviewError(f"{directory}: the prediction files hold no images")
    coco = _json(os.path.join(directory, COCO_IMAGES))
    classes = tuple(sorted((int(c["id"]), str(c["name"])) for c in (coco or {}).get("categories", [])))
    root = summary.get("input_root") if summary else None
    return PredictionSet(
        directory,
        tuple(sorted(images, key=lambda p: p.file)),
        tuple(skipped),
        str(root) if root else None,
        classes,
    )


def _json(path: str) -> dict[str, Any] | None:
    value = storage.read_json(path, "is the detx infer run complete?", ReviewError)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReviewError(f"{path} must hold a JSON object, as detx infer writes it")
    return value
