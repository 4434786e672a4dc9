"""Pre-labels as labelling projects: a COCO file CVAT imports and a Label Studio tasks file with its config.

Formats, as the tools read them:

- CVAT imports "COCO 1.0" through Datumaro's `coco_instances` reader
  (cvat-ai/cvat `cvat/apps/dataset_manager/formats/coco.py`), matches each
  COCO image to a task frame by `file_name` (with or without its extension,
  `bindings.py: match_dm_item`) and each category to a task label by name.
  So `file_name` is the image's path relative to the images root, the names
  a task made from that folder has; `coco_url` says where the file is.
- Label Studio takes a list of tasks, each `data` (the `$image` the labeling
  config names) plus `predictions`: `model_version`, `score` and `result`
  items of type `rectanglelabels` with `from_name`/`to_name` matching the
  config, `original_width`/`original_height` in pixels and `value` x, y,
  width, height in percent of the image (HumanSignal/label-studio
  `docs/source/guide/predictions.md`, "Import bbox and choice pre-annotations").
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from detx.components.batch_inference.records import BoxPrediction, ImagePrediction

# The names the labeling config gives its tags; every result item refers to them.
LS_FROM_NAME = "label"
LS_TO_NAME = "image"
# Label Studio serves files of a Local Storage under this path, relative to
# LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (HumanSignal/label-studio docs/source/guide/storage.md, "Local storage").
LS_LOCAL_FILES = "/data/local-files/?d="

COCO_FILENAME = "coco_prelabels.json"
LS_TASKS_FILENAME = "label_studio_tasks.json"
LS_CONFIG_FILENAME = "label_studio_config.xml"


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Where the predicted images are, for the tools to load them.

    Attributes:
        root: the folder `detx infer` read (prediction files are relative to it).
        url_prefix: prepended to the relative path for Label Studio's `$image` and COCO's
            `coco_url` (e.g. `https://bucket/images/`); empty: Label Studio's local files
            under `root` (started with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=root) and a
            `file://` URL in COCO.
    """

    root: str
    url_prefix: str = ""

    def url(self, file: str) -> str:
        """The image's address for Label Studio."""
        quoted = urllib.parse.quote(file)
        return self.url_prefix + quoted if self.url_prefix else LS_LOCAL_FILES + quoted

    def coco_url(self, file: str) -> str:
        """The image's address in COCO's `coco_url`."""
        if self.url_prefix:
            return self.url_prefix + urllib.parse.quote(file)
        return "file://" + urllib.parse.quote(os.path.abspath(os.path.join(self.root, file)))


def categories(
    predictions: Iterable[ImagePrediction], known: Sequence[tuple[int, str]] = (), extra: Sequence[str] = ()
) -> list[tuple[int, str]]:
    """(class id, name) of every class: the model's `known` ones and those the predictions name, by id.

    `extra` names (e.g. classes only the labelled data has) come after, numbered on.

    Raises:
        ValueError: one class id carries two names (predictions of two models with different label maps).
    """
    names: dict[int, str] = dict(known)
    for p in predictions:
        for d in p.detections:
            if names.setdefault(d.class_id, d.label) != d.label:
                raise ValueError(
                    f"class id {d.class_id} is both {names[d.class_id]!r} and {d.label!r}: the predictions come "
                    "from models with different label maps"
                )
    out = sorted(names.items())
    next_id = max(names, default=0) + 1
    for name in extra:
        if name not in names.values():
            out.append((next_id, name))
            next_id += 1
    return out


def _clipped(d: BoxPrediction) -> tuple[float, float, float, float]:
    ymin, xmin, ymax, xmax = (min(max(v, 0.0), 1.0) for v in d.box)
    return ymin, xmin, ymax, xmax


def coco_document(
    predictions: Sequence[ImagePrediction], source: ImageSource, min_score: float, classes: Sequence[tuple[int, str]]
) -> dict[str, Any]:
    """The detections scoring at least `min_score` as a COCO instances document (bbox [x, y, w, h] in pixels)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, p in enumerate(predictions, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": p.file,
                "width": p.width,
                "height": p.height,
                "coco_url": source.coco_url(p.file),
            }
        )
        for d in p.detections:
            if d.score < min_score:
                continue
            ymin, xmin, ymax, xmax = _clipped(d)
            w, h = (xmax - xmin) * p.width, (ymax - ymin) * p.height
            if w <= 0 or h <= 0:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": d.class_id,
                    "bbox": [round(xmin * p.width, 2), round(ymin * p.height, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "segmentation": [],
                    # CVAT reads `score` as an attribute its labels may not have; COCO results carry it, not instances.
                }
            )
    return {
        "info": {"description": "detx pre-labels", "version": "1.0"},
        "licenses": [],
        "categories": [{"id": cid, "name": name, "supercategory": ""} for cid, name in classes],
        "images": images,
        "annotations": annotations,
    }


def label_studio_tasks(
    predictions: Sequence[ImagePrediction], source: ImageSource, min_score: float, model_version: str
) -> list[dict[str, Any]]:
    """One Label Studio task per image, its detections scoring at least `min_score` as one prediction."""
    tasks = []
    for p in predictions:
        results: list[dict[str, Any]] = []
        scores: list[float] = []
        for i, d in enumerate(p.detections):
            if d.score < min_score:
                continue
            ymin, xmin, ymax, xmax = _clipped(d)
            if xmax <= xmin or ymax <= ymin:
                continue
            results.append(
                {
                    "id": f"detx-{i}",
                    "type": "rectanglelabels",
                    "from_name": LS_FROM_NAME,
                    "to_name": LS_TO_NAME,
                    "original_width": p.width,
                    "original_height": p.height,
                    "image_rotation": 0,
                    "value": {
                        "rotation": 0,
                        "x": xmin * 100.0,
                        "y": ymin * 100.0,
                        "width": (xmax - xmin) * 100.0,
                        "height": (ymax - ymin) * 100.0,
                        "rectanglelabels": [d.label],
                    },
                    "score": d.score,
                }
            )
            scores.append(d.score)
        # The prediction's score sorts tasks in Label Studio's Data Manager: the least sure box first.
        score = min(scores, default=0.0)
        tasks.append(
            {
                "data": {LS_TO_NAME: source.url(p.file), "detx_file": p.file},
                "predictions": [{"model_version": model_version, "score": score, "result": results}],
            }
        )
    return tasks


def label_studio_config(names: Sequence[str]) -> str:
    """The labeling config the tasks need: an Image named `image` and RectangleLabels named `label`."""
    labels = "\n".join(f"    <Label value={quoteattr(n)}/>" for n in names)
    return (
        "<View>\n"
        f'  <Image name="{LS_TO_NAME}" value="${LS_TO_NAME}"/>\n'
        f'  <RectangleLabels name="{LS_FROM_NAME}" toName="{LS_TO_NAME}">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>\n"
    )
