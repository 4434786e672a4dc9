"""Reads a COCO detection dataset: one instances JSON file and a folder of images."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import tensorflow as tf

from detx.components.data.label_map import LabelMap
from detx.components.data.records import Reject, RejectReason, SourceBox, SourceRecord
from detx.components.data.scan import DatasetError, Scan, split_duplicates


def _load_json(path: str) -> dict[str, Any]:
    if not tf.io.gfile.exists(path):
        raise DatasetError(f"COCO annotation file {path} does not exist")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise DatasetError(
            f"COCO annotation file {path} is empty; expected a JSON object with 'images', 'annotations' "
            "and 'categories'"
        )
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"COCO annotation file {path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise DatasetError(f"COCO annotation file {path} must hold a JSON object, not {type(doc).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DatasetError(
                f"COCO annotation file {path} has no {key!r} list; a detection dataset needs 'images', "
                "'annotations' and 'categories' (an image-info file for a test split cannot be trained on)"
            )
    if not doc["images"]:
        raise DatasetError(f"COCO annotation file {path} lists no images")
    return doc


def _categories(doc: dict[str, Any], path: str) -> dict[int, str]:
    categories: dict[int, str] = {}
    for c in doc["categories"]:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise DatasetError(f"{path}: category {c!r} needs an integer 'id' and a string 'name'")
        if c["id"] in categories:
            raise DatasetError(f"{path}: category id {c['id']} is defined twice")
        categories[c["id"]] = c["name"]
    if not categories:
        raise DatasetError(f"{path}: 'categories' is empty; list the classes the boxes use")
    return categories


def _box(ann: dict[str, Any]) -> SourceBox | None:
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
        return None
    x, y, w, h = (float(v) for v in bbox)
    return SourceBox(ann.get("category_id", -1), x, y, x + w, y + h, is_crowd=bool(ann.get("iscrowd", 0)))


def scan_coco(annotation_file: str, image_dir: str) -> Scan:
    """Reads a COCO instances file into records.

    Category ids may be sparse (COCO's are 1..90 with gaps); they become
    contiguous labels 1..N in id order. Image ids become `image/source_id`.

    Args:
        annotation_file: the instances JSON.
        image_dir: the folder `file_name`s are relative to.

    Raises:
        DatasetError: the file is missing, empty, not COCO, or has no images.
    """
    doc = _load_json(annotation_file)
    label_map, resolve = LabelMap.from_category_ids(_categories(doc, annotation_file))
    rejects: list[Reject] = []
    by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in doc["annotations"]:
        by_image[ann.get("image_id") if isinstance(ann, dict) else None].append(ann)

    records: list[SourceRecord] = []
    bad_image_ids: set[str] = set()
    for img in doc["images"]:
        ok = isinstance(img, dict) and isinstance(img.get("id"), int | str) and isinstance(img.get("file_name"), str)
        if not ok:
            rejects.append(
                Reject(
                    str(img.get("id", "?")) if isinstance(img, dict) else "?",
                    annotation_file,
                    RejectReason.BAD_ANNOTATION,
                    f"image entry {str(img)[:200]} needs an 'id' and a 'file_name'",
                )
            )
            continue
        image_id = str(img["id"])
        boxes = [_box(a) if isinstance(a, dict) else None for a in by_image.pop(img["id"], [])]
        if any(b is None for b in boxes):
            rejects.append(
                Reject(
                    image_id,
                    annotation_file,
                    RejectReason.BAD_BOX,
                    f"an annotation of image {image_id!r} has no valid 'bbox' [x, y, width, height]",
                )
            )
            bad_image_ids.add(image_id)
            continue
        width, height = img.get("width"), img.get("height")
        declared = (width, height) if isinstance(width, int) and isinstance(height, int) else None
        records.append(
            SourceRecord(
                image_id=image_id,
                filename=img["file_name"],
                boxes=tuple(b for b in boxes if b is not None),
                image_path=os.path.join(image_dir, img["file_name"]),
                declared_size=declared,
                annotation_file=annotation_file,
            )
        )
    for image_id, anns in by_image.items():
        rejects.append(
            Reject(
                str(image_id),
                annotation_file,
                RejectReason.BAD_ANNOTATION,
                f"{len(anns)} annotation(s) refer to image id {image_id!r}, which is not in 'images'",
            )
        )
    kept, duplicates = split_duplicates(records)
    return Scan(
        label_map=label_map,
        resolve=resolve,  # type: ignore[arg-type]
        num_records=len(doc["images"]) + len(by_image),
        records=tuple(kept),
        rejects=tuple(rejects + duplicates),
        category_ids={str(k): v for k, v in resolve.items()},
    )
