"""The job's files: each shard written at once (temp name, then rename), and the merged results at the end.

Under the output folder:

    job.json                              what the shards were computed from (listing.py)
    predictions-00000-of-00004.jsonl      records.ImagePrediction lines, one shard each
    shards/skipped-00000-of-00004.jsonl   the shard's records.SkippedImage lines
    skipped.jsonl                         every skipped image (merged at the end)
    coco_results.json                     COCO detection results
    coco_images.json                      the images and categories the results refer to
    summary.json                          counts, model, seconds, images/s
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow as tf

from detx.components import storage
from detx.components.batch_inference.listing import (
    MANIFEST,
    PREDICTIONS_PREFIX,
    SHARDS_DIR,
    Shard,
    predictions_path,
    skipped_path,
)
from detx.components.batch_inference.records import ImagePrediction, SkippedImage, read_lines

SKIPPED = "skipped.jsonl"
COCO_RESULTS = "coco_results.json"
COCO_IMAGES = "coco_images.json"
SUMMARY = "summary.json"
FINAL_FILES = (SKIPPED, COCO_RESULTS, COCO_IMAGES, SUMMARY)


def write_atomic(path: str, chunks: Iterable[str]) -> None:
    """Writes the chunks as one file that readers see whole or not at all (`storage.write_atomic`)."""
    storage.write_atomic(path, "".join(chunks))


def write_shard(out_dir: str, shard: Shard, results: dict[str, ImagePrediction | SkippedImage]) -> None:
    """Writes one finished shard: its skipped list first, then its predictions, whose presence marks it done."""
    ordered = [results[f] for f in shard.files]
    write_atomic(
        skipped_path(out_dir, shard.index, shard.count),
        (r.to_json() + "\n" for r in ordered if isinstance(r, SkippedImage)),
    )
    write_atomic(
        predictions_path(out_dir, shard.index, shard.count),
        (r.to_json() + "\n" for r in ordered if isinstance(r, ImagePrediction)),
    )


def _lines(path: str) -> Iterator[str]:
    with tf.io.gfile.GFile(path) as f:
        yield from f


def read_predictions(out_dir: str, shards: list[Shard]) -> Iterator[tuple[Shard, ImagePrediction]]:
    """Every prediction of the finished job, shard by shard, in listing order."""
    for shard in shards:
        for prediction in read_lines(_lines(predictions_path(out_dir, shard.index, shard.count))):
            yield shard, prediction


def read_skipped(out_dir: str, shards: list[Shard]) -> Iterator[SkippedImage]:
    """Every skipped image of the finished job, in listing order."""
    for shard in shards:
        for line in _lines(skipped_path(out_dir, shard.index, shard.count)):
            if line.strip():
                yield SkippedImage.from_json(line)


def coco_box(box: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    """A normalized (ymin, xmin, ymax, xmax) box as COCO's [x, y, width, height] in pixels."""
    ymin, xmin, ymax, xmax = box
    return [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height]


def write_final(out_dir: str, shards: list[Shard], names: dict[int, str], summary: dict[str, Any]) -> dict[str, Any]:
    """Merges the shards into skipped.jsonl and the COCO files, then writes summary.json; returns the summary.

    COCO's result format is what pycocotools' `COCO.loadRes` reads (cocodataset/cocoapi,
    PythonAPI/pycocotools/coco.py): a JSON list of {"image_id", "category_id", "bbox":
    [x, y, w, h] in pixels, "score"}, whose image ids must be in the COCO object it is loaded
    into. So coco_images.json is that object: the scored images (id = 1-based position in the
    sorted listing, file_name, width, height), the model's categories and no annotations;
    `COCO("coco_images.json").loadRes("coco_results.json")` loads the results.
    """
    counts = {"scored": 0, "detections": 0, "skipped": 0}
    images: list[dict[str, Any]] = []

    def results() -> Iterator[str]:
        first = True
        yield "["
        positions: dict[str, int] = {}
        for shard, p in read_predictions(out_dir, shards):
            if p.file not in positions:
                positions = {f: shard.first_id + k for k, f in enumerate(shard.files)}
            image_id = positions[p.file] + 1
            images.append({"id": image_id, "file_name": p.file, "width": p.width, "height": p.height})
            counts["scored"] += 1
            for d in p.detections:
                counts["detections"] += 1
                row = {
                    "image_id": image_id,
                    "category_id": d.class_id,
                    "bbox": [round(v, 2) for v in coco_box(d.box, p.width, p.height)],
                    "score": round(d.score, 5),
                }
                yield ("\n" if first else ",\n") + json.dumps(row)
                first = False
        yield "\n]\n"

    write_atomic(os.path.join(out_dir, COCO_RESULTS), results())
    categories = [{"id": k, "name": v, "supercategory": "none"} for k, v in sorted(names.items())]
    coco = {"info": {"description": "detx infer"}, "images": images, "annotations": [], "categories": categories}
    write_atomic(os.path.join(out_dir, COCO_IMAGES), [json.dumps(coco)])

    reasons: dict[str, int] = {}

    def skipped() -> Iterator[str]:
        for s in read_skipped(out_dir, shards):
            counts["skipped"] += 1
            kind = s.reason.split(":", 1)[0]
            reasons[kind] = reasons.get(kind, 0) + 1
            yield s.to_json() + "\n"

    write_atomic(os.path.join(out_dir, SKIPPED), skipped())
    full = {**summary, **counts, "skipped_by_reason": reasons}
    write_atomic(os.path.join(out_dir, SUMMARY), [json.dumps(full, indent=2, sort_keys=True) + "\n"])
    return full


def clear(out_dir: str) -> None:
    """Removes a previous job's results from `out_dir` (--overwrite); other files stay."""
    if not tf.io.gfile.isdir(out_dir):
        return
    for entry in tf.io.gfile.listdir(out_dir):
        name = entry.rstrip("/")
        path = os.path.join(out_dir, name)
        if name == SHARDS_DIR:
            tf.io.gfile.rmtree(path)
        elif name.startswith(PREDICTIONS_PREFIX) or name in (MANIFEST, *FINAL_FILES):
            tf.io.gfile.remove(path)
