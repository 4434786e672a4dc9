"""`--format auto`: tells a dataset's format from the files in its folder.

DetectionExampleGen detects when it runs (through `sources.scan_source`), not
when the pipeline is built: on Kubeflow the data root is a run parameter, so
only the step that reads the data can look at it. Each span of a span root is
detected on its own.
"""

from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf

from detx.components.data.ingest_options import AUTO, DEFAULT_PATTERNS
from detx.components.data.scan import DatasetError

# A COCO file is recognized by its keys. Files up to this size are parsed; of
# larger ones (train2017's is 450 MB) only the start is read, where exporters
# write "images" (after the small "info" and "licenses").
_COCO_PEEK_BYTES = 1 << 20
_COCO_KEYS = ("images", "annotations", "categories")
# Where COCO annotation files are looked for: the folder itself, and the
# annotations/ folder CVAT and the COCO downloads use.
_COCO_GLOBS = ("*.json", "annotations/*.json")
# Roboflow's COCO export: train/, valid/ and test/ folders, each with this file beside its images.
ROBOFLOW_COCO_PATTERN = "*/_annotations.coco.json"
_YOLO_FILES = ("data.yaml", "data.yml")
_YOLO_LABEL_GLOBS = ("labels/*.txt", "*/labels/*.txt", "labels/*/*.txt")
_WHAT_IS_LOOKED_FOR = (
    "COCO (one *.json, or annotations/*.json, with 'images', 'annotations' and 'categories', or Roboflow's "
    "train/, valid/, test/ folders with _annotations.coco.json), "
    "Pascal VOC (Annotations/*.xml), YOLO (data.yaml, or labels/*.txt) and OD API TFRecords (*.*record*)"
)


@dataclasses.dataclass(frozen=True)
class Detected:
    """What `detect_format` found.

    Attributes:
        data_format: "coco", "voc", "yolo" or "tfrecord".
        pattern: the annotation files to read, relative to the folder.
        found: a sentence for the ingestion summary, naming the files that decided it.
    """

    data_format: str
    pattern: str
    found: str


def _is_coco(path: str) -> bool:
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(_COCO_PEEK_BYTES)
    if len(head) < _COCO_PEEK_BYTES:
        try:
            doc = json.loads(head)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        return isinstance(doc, dict) and all(isinstance(doc.get(k), list) for k in _COCO_KEYS)
    return b'"images"' in head


def _relative(paths: list[str], base: str) -> list[str]:
    return sorted(os.path.relpath(p, base) for p in paths)


def _candidates(input_base: str) -> dict[str, tuple[str, str]]:
    """Format to (pattern, what was found) for every format whose files are in the folder."""
    found: dict[str, tuple[str, str]] = {}
    json_files = [p for g in _COCO_GLOBS for p in tf.io.gfile.glob(os.path.join(input_base, g))]
    coco = _relative([p for p in json_files if _is_coco(p)], input_base)
    if len(coco) == 1:
        found["coco"] = (coco[0], f"the COCO annotation file {coco[0]}")
    elif not coco and (
        roboflow := _relative(tf.io.gfile.glob(os.path.join(input_base, ROBOFLOW_COCO_PATTERN)), input_base)
    ):
        folders = ", ".join(os.path.dirname(p) + "/" for p in roboflow)
        found["coco"] = (ROBOFLOW_COCO_PATTERN, f"Roboflow's COCO export, read as one dataset ({folders})")
    elif coco:
        raise DatasetError(
            f"{input_base} holds {len(coco)} COCO annotation files ({', '.join(coco)}); give the one to read: "
            f"--format coco --pattern {coco[0]}"
        )
    voc = tf.io.gfile.glob(os.path.join(input_base, DEFAULT_PATTERNS["voc"]))
    if voc:
        found["voc"] = (DEFAULT_PATTERNS["voc"], f"{len(voc)} Pascal VOC file(s) in Annotations/")
    yaml_files = [n for n in _YOLO_FILES if tf.io.gfile.exists(os.path.join(input_base, n))]
    labels = [p for g in _YOLO_LABEL_GLOBS for p in tf.io.gfile.glob(os.path.join(input_base, g))]
    if yaml_files or labels:
        parts = [yaml_files[0]] if yaml_files else []
        what = " and ".join(parts + ([f"{len(labels)} YOLO label file(s)"] if labels else []))
        found["yolo"] = (yaml_files[0] if yaml_files else DEFAULT_PATTERNS["yolo"], what)
    records = tf.io.gfile.glob(os.path.join(input_base, DEFAULT_PATTERNS["tfrecord"]))
    if records:
        found["tfrecord"] = (DEFAULT_PATTERNS["tfrecord"], f"{len(records)} OD API TFRecord file(s)")
    return found


def _format_of_files(input_base: str, pattern: str) -> str:
    """The format of the files a pattern the user gave matches, by their names."""
    files = tf.io.gfile.glob(os.path.join(input_base, pattern))
    kinds = set()
    for path in files:
        name = os.path.basename(path).lower()
        if name.endswith(".json"):
            kinds.add("coco")
        elif name.endswith(".xml"):
            kinds.add("voc")
        elif name.endswith((".yaml", ".yml", ".txt")):
            kinds.add("yolo")
        elif "record" in name:
            kinds.add("tfrecord")
    if len(kinds) != 1:
        what = f"files of several formats ({', '.join(sorted(kinds))})" if kinds else "no annotation files"
        raise DatasetError(
            f"--format auto: the pattern {os.path.join(input_base, pattern)} matches {what}; give the format: "
            "--format coco, voc, yolo or tfrecord"
        )
    return kinds.pop()


def detect_format(input_base: str, pattern: str = DEFAULT_PATTERNS[AUTO]) -> Detected:
    """The format of the dataset in `input_base`.

    With auto's own pattern the folder is looked at; a pattern the user gave
    is kept, and the names of the files it matches say the format (.json:
    COCO, .xml: VOC, .yaml/.txt: YOLO, *record*: TFRecord).

    Raises:
        DatasetError: no format's files are there, or several formats' are;
            the message names what was looked for and the `--format` fix.
    """
    if pattern != DEFAULT_PATTERNS[AUTO]:
        fmt = _format_of_files(input_base, pattern)
        return Detected(fmt, pattern, f"read {input_base} as {fmt}, from the names of the files matching {pattern}")
    candidates = _candidates(input_base)
    if len(candidates) == 1:
        [(fmt, (found_pattern, what))] = candidates.items()
        return Detected(fmt, found_pattern, f"read {input_base} as {fmt}: found {what}")
    if not candidates:
        raise DatasetError(
            f"--format auto found no dataset in {input_base}: looked for {_WHAT_IS_LOOKED_FOR}. Is --data the "
            "dataset folder? If it is, give its format: --format coco, voc, yolo or tfrecord (and --pattern)"
        )
    found = "; ".join(f"{fmt}: {what}" for fmt, (_, what) in candidates.items())  # e.g. "coco: the COCO ..."
    raise DatasetError(
        f"--format auto found more than one format in {input_base} ({found}); give the one to read: "
        f"--format {' or --format '.join(candidates)}"
    )
