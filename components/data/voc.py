"""Reads a Pascal VOC dataset: one XML file per image under `Annotations/`, images under `JPEGImages/`."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import tensorflow as tf

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap, label_map_from_names
from detx.components.data.records import Reject, RejectReason, SourceBox, SourceRecord
from detx.components.data.scan import DatasetError, Scan, split_duplicates


class _XmlError(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _number(node: ET.Element | None, tag: str, where: str) -> float:
    text = node.findtext(tag) if node is not None else None
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _XmlError(RejectReason.BAD_BOX, f"{where} has no numeric <{tag}> (found {text!r})") from None


def parse_voc_xml(xml_path: str, data: bytes, image_dir: str) -> SourceRecord:
    """Parses one VOC annotation into a record.

    VOC corners are 1-based inclusive pixel indices (the devkit's convention):
    xmin=1, xmax=640 spans a whole 640-pixel row. They become the continuous
    box [xmin - 1, xmax], so a one-pixel box has width 1.

    Raises:
        _XmlError: the file is empty, not XML, or an object has no usable box.
    """
    if not data.strip():
        raise _XmlError(RejectReason.BAD_ANNOTATION, f"annotation file {xml_path} is empty")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise _XmlError(RejectReason.BAD_ANNOTATION, f"annotation file {xml_path} is not valid XML: {e}") from e
    filename = (root.findtext("filename") or "").strip()
    if not filename:
        raise _XmlError(RejectReason.BAD_ANNOTATION, f"annotation file {xml_path} has no <filename>")
    declared = None
    size = root.find("size")
    if size is not None and size.findtext("width") and size.findtext("height"):
        w = int(_number(size, "width", f"{xml_path} <size>"))
        h = int(_number(size, "height", f"{xml_path} <size>"))
        declared = (w, h) if w > 0 and h > 0 else None  # some tools write 0 for "unknown"
    boxes = []
    for i, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"object {i} ({name or 'no name'}) in {xml_path}"
        bnd = obj.find("bndbox")
        x0, y0 = _number(bnd, "xmin", where), _number(bnd, "ymin", where)
        x1, y1 = _number(bnd, "xmax", where), _number(bnd, "ymax", where)
        boxes.append(SourceBox(name, x0 - 1.0, y0 - 1.0, x1, y1))
    return SourceRecord(
        image_id=os.path.splitext(filename)[0],
        filename=filename,
        boxes=tuple(boxes),
        image_path=os.path.join(image_dir, filename),
        declared_size=declared,
        annotation_file=xml_path,
    )


def scan_voc(input_dir: str, pattern: str = "Annotations/*.xml", image_dir: str = "JPEGImages") -> Scan:
    """Reads every VOC XML matching `pattern` under `input_dir`.

    The label map is `label_map.pbtxt` in `input_dir` when there is one (then
    objects of other classes are rejected); otherwise it is every class name
    found, sorted.

    Raises:
        DatasetError: no annotation files match, or the label map is unusable.
    """
    xml_files = sorted(tf.io.gfile.glob(os.path.join(input_dir, pattern)))
    if not xml_files:
        raise DatasetError(
            f"no Pascal VOC annotation files match {os.path.join(input_dir, pattern)}; expected "
            "Annotations/*.xml beside JPEGImages/"
        )
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    for path in xml_files:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            records.append(parse_voc_xml(path, data, os.path.join(input_dir, image_dir)))
        except _XmlError as e:
            rejects.append(Reject(stem, path, e.reason, e.detail))
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
    )
