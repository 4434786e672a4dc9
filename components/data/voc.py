"""Reads a Pascal VOC dataset: one XML file per image under `Annotations/`, images under `JPEGImages/`.

Exports of CVAT and LabelImg are read as they are written, with no flags:

- annotation files are found in the pattern's folder and its subfolders
  (`Annotations/*.xml` also finds `Annotations/task_1/a.xml`);
- images are looked up under the image folder by `<filename>`, under the image
  folder by the annotation file's subfolder and `<filename>`, or beside the
  XML file (LabelImg's default), whichever holds a sample of the files
  (`scan.choose_layout`); the scan's notes say which;
- corners written as integers from 1 follow the VOC devkit (1-based,
  inclusive); corners written as decimals, or a corner at 0, are continuous
  0-based coordinates (CVAT writes these), for the whole dataset;
- `<size>` missing or 0 leaves the size to the image itself, which
  `records.build_example` reads anyway;
- `difficult`, `truncated`, `occluded`, `pose` and other tags are ignored: a
  difficult object is trained on like any other, as the OD API's
  `create_pascal_tf_record.py` does by default.
"""

from __future__ import annotations

import fnmatch
import os
import re
import xml.etree.ElementTree as ET
from typing import NamedTuple

import tensorflow as tf

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap, label_map_from_names
from detx.components.data.records import Reject, RejectReason, SourceBox, SourceRecord
from detx.components.data.scan import DatasetError, Scan, choose_layout, split_duplicates

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_CORNERS = ("xmin", "ymin", "xmax", "ymax")


class _XmlError(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class VocFile(NamedTuple):
    """One VOC annotation file as written, before the dataset's conventions are applied.

    Attributes:
        xml_path: the file.
        rel_dir: its folder relative to the annotation folder ("" at the top).
        filename: `<filename>`, with `/` between folders.
        declared_size: `<size>` as (width, height), None when missing or 0.
        objects: (class name, xmin, ymin, xmax, ymax) as written.
        devkit_corners: every corner is an integer of at least 1, as the devkit writes them.
    """

    xml_path: str
    rel_dir: str
    filename: str
    declared_size: tuple[int, int] | None
    objects: tuple[tuple[str, float, float, float, float], ...]
    devkit_corners: bool


def _number(node: ET.Element | None, tag: str, where: str, reason: RejectReason) -> tuple[float, str]:
    text = node.findtext(tag) if node is not None else None
    try:
        return float(text or ""), text or ""
    except ValueError:
        raise _XmlError(reason, f"{where} has no numeric <{tag}> (found {text!r})") from None


def parse_voc_xml(xml_path: str, data: bytes, rel_dir: str = "") -> VocFile:
    """Parses one VOC annotation file.

    Raises:
        _XmlError: the file is empty, not XML, or an object has no usable box.
    """
    if not data.strip():
        raise _XmlError(RejectReason.BAD_ANNOTATION, f"annotation file {xml_path} is empty")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise _XmlError(RejectReason.BAD_ANNOTATION, f"annotation file {xml_path} is not valid XML: {e}") from e
    filename = (root.findtext("filename") or "").strip().replace("\\", "/")
    if not filename:
        raise _XmlError(RejectReason.BAD_ANNOTATION, f"annotation file {xml_path} has no <filename>")
    declared = None
    size = root.find("size")
    if size is not None and (size.findtext("width") or "").strip() and (size.findtext("height") or "").strip():
        where = f"{xml_path} <size>"
        w = int(_number(size, "width", where, RejectReason.BAD_ANNOTATION)[0])
        h = int(_number(size, "height", where, RejectReason.BAD_ANNOTATION)[0])
        declared = (w, h) if w > 0 and h > 0 else None  # LabelImg and others write 0 for "unknown"
    objects = []
    devkit = True
    for i, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"object {i} ({name or 'no name'}) in {xml_path}"
        bnd = obj.find("bndbox")
        corners = [_number(bnd, tag, where, RejectReason.BAD_BOX) for tag in _CORNERS]
        devkit = devkit and all(_INTEGER.fullmatch(text) and value >= 1 for value, text in corners)
        x0, y0, x1, y1 = (value for value, _ in corners)
        objects.append((name, x0, y0, x1, y1))
    return VocFile(xml_path, rel_dir, filename, declared, tuple(objects), devkit)


def _annotation_files(input_dir: str, pattern: str) -> list[tuple[str, str]]:
    """(file, folder relative to the annotation folder) of every file the pattern names, subfolders included.

    `**` in the pattern is accepted and means the same: CVAT and LabelImg keep
    a task's or a camera's folders, and `tf.io.gfile.glob` does not descend.
    """
    folder_pattern, name_pattern = os.path.split(pattern.replace("\\", "/"))
    folder_pattern = "/".join(p for p in folder_pattern.split("/") if p and p != "**")
    found: dict[str, str] = {}
    for top in tf.io.gfile.glob(os.path.join(input_dir, folder_pattern)) if folder_pattern else [input_dir]:
        if not tf.io.gfile.isdir(top):
            continue
        for folder, _, names in tf.io.gfile.walk(top):
            rel = os.path.relpath(folder, top).replace(os.sep, "/")
            for name in fnmatch.filter(names, name_pattern):
                found.setdefault(os.path.join(folder, name), "" if rel == "." else rel)
    return sorted(found.items())


def _image_layout(files: list[VocFile], image_dir: str) -> tuple[list[str], list[str], str]:
    """Image paths and ids of the files, in the layout that holds the images, and a note saying which."""
    layouts = (
        ("<filename> under the image folder", lambda f: os.path.join(image_dir, f.filename), lambda f: f.filename),
        (
            "the annotation's subfolder and <filename> under the image folder",
            lambda f: os.path.join(image_dir, f.rel_dir, f.filename),
            lambda f: os.path.join(f.rel_dir, f.filename),
        ),
        (
            "beside each annotation file (LabelImg's default)",
            lambda f: os.path.join(os.path.dirname(f.xml_path), f.filename),
            lambda f: os.path.join(f.rel_dir, f.filename),
        ),
    )
    index, found, sampled = choose_layout([path for _, path, _ in layouts], files)
    what, path_of, name_of = layouts[index]
    note = (
        f"VOC images are found {what} ({image_dir}): {found} of {sampled} sampled found"
        if found > 0
        else f"none of {sampled} sampled VOC images was found under {image_dir}, in its subfolders or beside the "
        "annotation files; they are reported missing"
    )
    return [path_of(f) for f in files], [os.path.splitext(name_of(f))[0] for f in files], note


def scan_voc(input_dir: str, pattern: str = "Annotations/*.xml", image_dir: str = "JPEGImages") -> Scan:
    """Reads every VOC XML matching `pattern` under `input_dir`, subfolders of its folder included.

    The label map is `label_map.pbtxt` in `input_dir` when there is one (then
    objects of other classes are rejected); otherwise it is every class name
    found, sorted. Image ids are the image's path under its folder without the
    extension (`2007_000027`, `task_1/frame_0001`).

    Raises:
        DatasetError: no annotation files match, or the label map is unusable.
    """
    xml_files = _annotation_files(input_dir, pattern)
    if not xml_files:
        raise DatasetError(
            f"no Pascal VOC annotation files match {os.path.join(input_dir, pattern)} (subfolders included); "
            "expected Annotations/*.xml beside JPEGImages/"
        )
    files: list[VocFile] = []
    rejects: list[Reject] = []
    for path, rel_dir in xml_files:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        try:
            files.append(parse_voc_xml(path, data, rel_dir))
        except _XmlError as e:
            stem = os.path.splitext(os.path.join(rel_dir, os.path.basename(path)))[0]
            rejects.append(Reject(stem, path, e.reason, e.detail))

    image_root = os.path.join(input_dir, image_dir)
    paths, ids, layout_note = _image_layout(files, image_root)
    notes = [layout_note]
    devkit = all(f.devkit_corners for f in files)
    # The devkit's corners are 1-based pixel indices, xmax inclusive: [xmin - 1, xmax] is the continuous box.
    shift = 1.0 if devkit else 0.0
    notes.append(
        "box corners are 1-based integers (the VOC devkit's convention)"
        if devkit
        else "box corners are continuous 0-based coordinates (some are decimals or 0, as CVAT writes them)"
    )
    nested = sum(1 for f in files if f.rel_dir)
    if nested:
        notes.append(f"{nested} annotation files are in subfolders of the annotation folder")
    records = [
        SourceRecord(
            image_id=image_id,
            filename=f.filename,
            boxes=tuple(SourceBox(n, x0 - shift, y0 - shift, x1, y1) for n, x0, y0, x1, y1 in f.objects),
            image_path=path,
            declared_size=f.declared_size,
            annotation_file=f.xml_path,
        )
        for f, path, image_id in zip(files, paths, ids, strict=True)
    ]
    label_map_path = os.path.join(input_dir, LABEL_MAP_FILENAME)
    if tf.io.gfile.exists(label_map_path):
        label_map = LabelMap.read(label_map_path)
    else:
        names = [str(b.category) for r in records for b in r.boxes]
        if not names:
            raise DatasetError(
                f"the VOC annotations under {input_dir} name no objects and there is no {LABEL_MAP_FILENAME}; "
                "add a label map that lists the classes"
            )
        label_map = label_map_from_names(names)
    resolve: dict[int | str, int] = {name: label for label, name in label_map.items()}
    kept, duplicates = split_duplicates(records)
    return Scan(
        label_map=label_map,
        resolve=resolve,
        num_records=len(xml_files),
        records=tuple(kept),
        rejects=tuple(rejects + duplicates),
        category_ids={str(k): v for k, v in resolve.items()},
        notes=tuple(notes),
    )
