"""Reads a YOLO detection dataset as Ultralytics and Roboflow export it.

    data.yaml              names: [cat, dog] (or {0: cat, 1: dog}); nc, train/val/test optional
    images/0001.jpg        labels/0001.txt: one `class cx cy w h` line per box, normalized to [0, 1]

or the same with `train/`, `valid/` (or `val/`) and `test/` folders that each
hold `images/` and `labels/`, or Ultralytics' `images/train/` beside
`labels/train/`. A label file is the image's path with its last `images`
folder replaced by `labels` and the extension by `.txt` (Ultralytics' rule).

detx splits by a hash of the image id, so the export's train/valid/test
folders are read as one dataset; an image id is the image's path inside its
`images/` folder without the extension (`0001`, or `train2017/0001` in the
Ultralytics layout), so an image exported into two splits is quarantined as a
duplicate rather than trained and evaluated on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import tensorflow as tf
import yaml

from detx.components.data.label_map import LabelMap
from detx.components.data.records import Reject, RejectReason, SourceBox, SourceRecord
from detx.components.data.scan import DatasetError, Scan, split_duplicates

# Image files Pillow reads; compared in lower case (exports from Windows tools write .JPG).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Class names one per line: LabelImg's and darknet's alternative to data.yaml.
CLASS_FILES = ("classes.txt", "obj.names")
# Ultralytics' folder names: a label path is its image path with the last of these swapped.
IMAGES, LABELS = "images", "labels"
# A centre and a size each rounded to 6 decimals put a corner at most 1e-6 off.
_ROUNDING = 1e-6


class _LineError(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _names_from_yaml(path: str) -> dict[int, str]:
    """Class id to name from data.yaml's `names` (a list, or a dict keyed by class id), checked against `nc`."""
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise DatasetError(f"YOLO dataset file {path} is not valid YAML: {e}") from e
    if not isinstance(doc, dict) or "names" not in doc:
        raise DatasetError(f"YOLO dataset file {path} has no 'names'; list the classes, e.g. names: [cat, dog]")
    names = doc["names"]
    items: list[tuple[Any, Any]]
    if isinstance(names, list):
        items = list(enumerate(names))
    elif isinstance(names, dict):
        items = list(names.items())
    else:
        raise DatasetError(f"{path}: 'names' must be a list or a {{class id: name}} mapping, not {names!r}")
    classes: dict[int, str] = {}
    for key, name in items:
        # YAML reads `no`, `on` and `null` as booleans and None: a class so named must be quoted.
        if isinstance(key, bool) or not isinstance(key, int) or isinstance(name, bool) or name is None:
            raise DatasetError(
                f"{path}: class {key!r}: {name!r} needs an integer id and a name; quote names YAML reads as "
                "booleans or null, e.g. 'no'"
            )
        classes[key] = str(name)
    if not classes:
        raise DatasetError(f"{path}: 'names' is empty; list the classes the label files use")
    nc = doc.get("nc")
    if nc is not None and nc != len(classes):
        raise DatasetError(f"{path} says nc: {nc} but 'names' lists {len(classes)} classes; make them agree")
    return classes


def _names_from_lines(path: str) -> dict[int, str]:
    with tf.io.gfile.GFile(path, "r") as f:
        names = [line.strip() for line in f.read().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path} lists no class names; write one name per line, in class id order")
    return dict(enumerate(names))


def _class_names(root: str, pattern: str) -> tuple[dict[int, str], str]:
    """The class names and the file they came from: data.yaml (the pattern), else a classes.txt/obj.names."""
    matches = sorted(tf.io.gfile.glob(os.path.join(root, pattern)))
    if len(matches) > 1:
        raise DatasetError(
            f"more than one YOLO dataset file matches {os.path.join(root, pattern)}: {', '.join(matches)}; "
            "give --pattern the one to read"
        )
    if matches:
        return _names_from_yaml(matches[0]), matches[0]
    for folder in (root, os.path.join(root, LABELS)):
        for name in CLASS_FILES:
            if tf.io.gfile.exists(os.path.join(folder, name)):
                return _names_from_lines(os.path.join(folder, name)), os.path.join(folder, name)
    raise DatasetError(
        f"no YOLO dataset file matches {os.path.join(root, pattern)} (nor {' or '.join(CLASS_FILES)}); it names "
        "the classes: write data.yaml with names: [first class, second class, ...] in class id order"
    )


def parse_label_line(line: str, class_ids: Mapping[int, str]) -> SourceBox:
    """One label line as a box in normalized corners.

    `0 0.5 0.25 0.2 0.1` is class 0 centred at (0.5, 0.25), 0.2 wide and 0.1
    high: corners (0.4, 0.2)-(0.6, 0.3). A line of a class and 3 or more x y
    pairs is a segmentation polygon (Roboflow's and Ultralytics' segment
    exports); its box is the polygon's extent, as Ultralytics takes it.

    Raises:
        _LineError: BAD_ANNOTATION for a line that is not 5 numbers (or a
            polygon), UNKNOWN_CATEGORY for a class id data.yaml does not name.
    """
    values = line.split()
    polygon = len(values) >= 7 and len(values) % 2 == 1
    if len(values) != 5 and not polygon:
        raise _LineError(
            RejectReason.BAD_ANNOTATION,
            f"has {len(values)} values ({line.strip()!r}); a YOLO box is 5: class x_center y_center width height",
        )
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        raise _LineError(RejectReason.BAD_ANNOTATION, f"has a value that is not a number ({line.strip()!r})") from None
    klass = numbers[0]
    if not (math.isfinite(klass) and klass == int(klass)):
        raise _LineError(RejectReason.BAD_ANNOTATION, f"starts with {values[0]!r}, not an integer class id")
    if int(klass) not in class_ids:
        known = ", ".join(f"{i}: {n}" for i, n in sorted(class_ids.items()))
        raise _LineError(
            RejectReason.UNKNOWN_CATEGORY,
            f"has class id {int(klass)}, which the dataset's names do not list ({known}); fix the line or add "
            "the class to data.yaml",
        )
    if polygon:
        xs, ys = numbers[1::2], numbers[2::2]
        return SourceBox(int(klass), min(xs), min(ys), max(xs), max(ys))
    cx, cy, w, h = numbers[1:]
    return SourceBox(int(klass), _snap(cx - w / 2), _snap(cy - h / 2), _snap(cx + w / 2), _snap(cy + h / 2))


def _snap(v: float) -> float:
    """A corner within the rounding of 6 decimals (what exporters write) of the edge, put on it.

    A box drawn to the image's edge would otherwise be counted as clipped.
    Coordinates further outside [0, 1] stay as they are: `build_example`
    clips them within the pixel tolerance and quarantines anything beyond.
    """
    if -_ROUNDING <= v < 0.0:
        return 0.0
    if 1.0 < v <= 1.0 + _ROUNDING:
        return 1.0
    return v


def _parse_label_file(path: str, class_ids: Mapping[int, str]) -> tuple[SourceBox, ...]:
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _LineError(RejectReason.BAD_ANNOTATION, f"label file {path} is not text: {e}") from e
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            boxes.append(parse_label_line(line, class_ids))
        except _LineError as e:
            raise _LineError(e.reason, f"line {number} of {path} {e.detail}") from None
    return tuple(boxes)


def _image_roots(root: str, image_dir: str) -> list[str]:
    """The `images/` folders: `image_dir` if given, else `images/` and `<split>/images/` (Roboflow)."""
    if image_dir:
        return [os.path.join(root, image_dir)]
    found = tf.io.gfile.glob(os.path.join(root, IMAGES)) + tf.io.gfile.glob(os.path.join(root, "*", IMAGES))
    return sorted(p for p in found if tf.io.gfile.isdir(p))


def _label_root(image_root: str) -> str:
    parent, last = os.path.split(image_root.rstrip("/"))
    return os.path.join(parent, LABELS if last == IMAGES else last)


def _files(folder: str, extensions: tuple[str, ...]) -> Iterator[str]:
    """Paths relative to `folder` of the files with these extensions, at any depth, sorted."""
    if not tf.io.gfile.isdir(folder):
        return
    found = []
    for dirpath, _, filenames in tf.io.gfile.walk(folder):
        rel_dir = os.path.relpath(dirpath, folder)
        for name in filenames:
            if name.lower().endswith(extensions):
                found.append(os.path.normpath(os.path.join(rel_dir, name)))
    yield from sorted(found)


def scan_yolo(input_dir: str, pattern: str = "data.yaml", image_dir: str = "") -> Scan:
    """Reads a YOLO dataset into records with normalized boxes.

    Class ids become labels 1..N in id order; an image without a label file
    has no objects (a hard negative). Records are rejected for a malformed
    label line, a class id the names do not list, and a label file with no
    image; boxes outside the image are caught by `build_example`, which knows
    the image's size.

    Args:
        input_dir: the export folder.
        pattern: the dataset file naming the classes, relative to `input_dir`;
            its folder is the dataset root.
        image_dir: the images folder relative to the root ("" finds `images/`
            and `<split>/images/`).

    Raises:
        DatasetError: no class names, an unusable data.yaml, or no images folder.
    """
    class_ids, names_file = _class_names(input_dir, pattern)
    root = os.path.dirname(names_file) if names_file.endswith((".yaml", ".yml")) else input_dir
    label_map, resolve = LabelMap.from_category_ids(class_ids)
    image_roots = _image_roots(root, image_dir)
    if not image_roots:
        raise DatasetError(
            f"no images folder under {root}: YOLO images go in images/ (labels in labels/), or in "
            "train/images, valid/images and test/images; give --image-dir for another folder "
            "(data.yaml's train/val/test paths are not followed)"
        )
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    for image_root in image_roots:
        label_root = _label_root(image_root)
        stems = set()
        for rel in _files(image_root, IMAGE_EXTENSIONS):
            stem = os.path.splitext(rel)[0]
            stems.add(stem)
            label_path = os.path.join(label_root, stem + ".txt")
            filename = os.path.relpath(os.path.join(image_root, rel), root)
            has_labels = tf.io.gfile.exists(label_path)
            try:
                boxes = _parse_label_file(label_path, class_ids) if has_labels else ()
            except _LineError as e:
                rejects.append(Reject(stem, label_path, e.reason, e.detail))
                continue
            records.append(
                SourceRecord(
                    image_id=stem,
                    filename=filename,
                    boxes=boxes,
                    image_path=os.path.join(image_root, rel),
                    normalized_boxes=True,
                    annotation_file=label_path if has_labels else "",
                )
            )
        for rel in _files(label_root, (".txt",)):
            stem = os.path.splitext(rel)[0]
            if stem in stems or os.path.basename(rel) in CLASS_FILES:
                continue
            label_path = os.path.join(label_root, rel)
            rejects.append(
                Reject(
                    stem,
                    label_path,
                    RejectReason.MISSING_IMAGE,
                    f"label file {label_path} has no image {os.path.join(image_root, stem)}"
                    f"{{{','.join(IMAGE_EXTENSIONS)}}}; add the image or remove the label file",
                )
            )
    if not records and not rejects:
        raise DatasetError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(image_roots)}; is --data the export folder?"
        )
    kept, duplicates = split_duplicates(records)
    return Scan(
        label_map=label_map,
        resolve=resolve,  # type: ignore[arg-type]
        num_records=len(records) + len(rejects),  # images, plus label files without one
        records=tuple(kept),
        rejects=tuple(rejects + duplicates),
        category_ids={str(k): v for k, v in resolve.items()},
    )
