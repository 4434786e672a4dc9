"""Helpers of the review tests: prediction lines in detx infer's format, images, a labelled span."""

from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image

from detx.components.batch_inference.records import BoxPrediction, ImagePrediction
from detx.components.data import spans

BOX = (0.2, 0.2, 0.6, 0.6)
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


def write_case(root) -> dict:
    """New images with their predictions, and a labelled span root (41 boxes: 20 circles, 20 squares, 1 triangle)."""
    new = root / "new"
    write_image(new / "ambiguous.jpg", noise_image(1))
    write_image(new / "blank.jpg", np.full((96, 96, 3), 128))
    write_image(new / "confident.jpg", noise_image(2))
    write_image(new / "sub" / "rare.jpg", noise_image(3))
    write_image(new / "never.jpg", noise_image(4))
    # A labelled image again, re-encoded at a lower quality: what a second delivery of one photo looks like.
    with open(new / "again.jpg", "wb") as f:
        f.write(jpeg(noise_image(100), quality=50))
    predictions = [
        pred("ambiguous.jpg", ("circle", 0.5, BOX), ("square", 0.97, (0.6, 0.6, 0.9, 0.9))),
        pred("blank.jpg", ("square", 0.03, BOX)),
        pred("confident.jpg", ("circle", 0.95, BOX)),
        pred("sub/rare.jpg", ("triangle", 0.9, BOX)),
        pred("never.jpg", ("cross", 0.92, BOX)),
        pred("again.jpg", ("circle", 0.45, BOX)),
    ]
    served = write_predictions(root / "served", predictions)

    labelled = root / "labelled"
    images, annotations = [], []
    classes = ["circle"] * 20 + ["square"] * 20 + ["triangle"]
    for i in range(6):
        write_image(labelled / "images" / f"{i}.jpg", noise_image(100 + i))
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 96, "height": 96})
    for n, name in enumerate(classes):
        annotations.append(
            {
                "id": n + 1,
                "image_id": n % 6 + 1,
                "category_id": ["circle", "square", "triangle"].index(name) + 1,
                "bbox": [10, 10, 20, 20],
                "area": 400,
                "iscrowd": 0,
            }
        )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(["circle", "square", "triangle"])]
    with open(labelled / "annotations.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    span_root = str(root / "spans")
    spans.add_span(span_root, str(labelled))
    return {"new": str(new), "served": served, "spans": span_root, "predictions": predictions}
