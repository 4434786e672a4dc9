"""Helpers of the review tests: prediction lines in detx infer's format, images, a labelled span."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from detx.components.batch_inference.records import BoxPrediction, ImagePrediction

CLASSES = {"circle": 1, "square": 2, "triangle": 3, "cross": 4}


def pred(
    file: str, *detections: tuple[str, float, tuple[float, float, float, float]], size=(96, 96)
) -> ImagePrediction:
    """One image's prediction: detections as (label, score, (ymin, xmin, ymax, xmax)), best first."""
    boxes = tuple(
        BoxPrediction(label, CLASSES[label], score, box)
        for label, score, box in sorted(detections, key=lambda d: -d[1])
    )
    return ImagePrediction(file=file, width=size[0], height=size[1], detections=boxes)


def write_predictions(directory, predictions, shards: int = 2) -> str:
    """Writes predictions as detx infer's `predictions-SSSSS-of-NNNNN.jsonl` shards; returns the folder."""
    os.makedirs(directory, exist_ok=True)
    for s in range(shards):
        with open(os.path.join(directory, f"predictions-{s:05d}-of-{shards:05d}.jsonl"), "w") as f:
            for p in predictions[s::shards]:
                f.write(p.to_json() + "\n")
    return str(directory)


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def noise_image(seed: int, size=(96, 96)) -> np.ndarray:
    """A smooth random picture (blurred noise): unlike any other seed's to dHash."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC))


def write_image(path, pixels: np.ndarray, quality: int = 90) -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(jpeg(pixels, quality))
    return str(path)
