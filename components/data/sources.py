"""A dataset source read as one `Scan`, in any of the four formats (or detected), one span or a window of spans.

DetectionExampleGen's executor, `detx ct check` and its statistics read
datasets through these functions, so they see the same records. This module is
plain data code: it imports neither Beam nor TFX, so the continuous-training
check can read a dataset without loading them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping

import tensorflow as tf

from detx.components.data import spans as spans_lib
from detx.components.data.coco import scan_coco
from detx.components.data.detect import detect_format
from detx.components.data.ingest_options import AUTO, IngestOptions
from detx.components.data.records import Reject, SourceRecord
from detx.components.data.scan import DatasetError, Scan
from detx.components.data.spans import qualified_id
from detx.components.data.tfrecord_source import parse_od_example, scan_tfrecords
from detx.components.data.voc import scan_voc
from detx.components.data.yolo import scan_yolo


def with_span(pattern: str, span: int) -> str:
    """The pattern with TFX's `{SPAN}` / `{SPAN:width}` replaced by the span number.

    Raises:
        ValueError: a `{SPAN:width}` whose width is not a number.
    """

    def number(match: re.Match[str]) -> str:
        width = match.group("width")
        if width is not None and not width.isdigit():
            raise ValueError(f"{{SPAN:{width}}} in {pattern!r}: the width must be a number, as in {{SPAN:4}}")
        return str(span).zfill(int(width or 0))

    return re.sub(r"\{SPAN(?::(?P<width>[^}]*))?\}", number, pattern)


def scan_source(options: IngestOptions, input_base: str, pattern: str) -> Scan:
    """Reads the annotations of a dataset in any of the four formats; `auto` detects which (`detect.detect_format`).

    Returns:
        The scan and the format it was read as; with `auto`, its first note
        says which format was found and why.

    Raises:
        DatasetError: the dataset cannot be read at all, or its format cannot be told.
    """
    if options.data_format != AUTO:
        return dataclasses.replace(_scan(options, input_base, pattern), data_format=options.data_format)
    detected = detect_format(input_base, pattern)
    logging.getLogger(__name__).info("--format auto: %s", detected.found)
    scan = _scan(dataclasses.replace(options, data_format=detected.data_format), input_base, detected.pattern)
    notes = (f"--format auto: {detected.found}", *scan.notes)
    return dataclasses.replace(scan, notes=notes, data_format=detected.data_format)


def _scan(options: IngestOptions, input_base: str, pattern: str) -> Scan:
    if options.data_format == "coco":
        matches = sorted(tf.io.gfile.glob(os.path.join(input_base, pattern)))
        folders = [os.path.dirname(m) for m in matches]
        if len(matches) > 1 and len(set(folders)) == len(matches) and input_base.rstrip("/") not in folders:
            # One file per folder (Roboflow's train/, valid/, test/): one dataset, its image ids
            # qualified by folder, since each export numbers its images from 0.
            return spans_lib.merge_parts(
                [(os.path.basename(folder), scan_coco(m, folder)) for m, folder in zip(matches, folders, strict=True)]
            )
        if len(matches) != 1:
            raise DatasetError(
                f"expected exactly one COCO annotation file matching {os.path.join(input_base, pattern)}, "
                f"found {len(matches)}{': ' + ', '.join(matches) if matches else ''}"
            )
        return scan_coco(matches[0], os.path.join(input_base, options.resolved_image_dir))
    if options.data_format == "voc":
        return scan_voc(input_base, pattern, options.resolved_image_dir)
    if options.data_format == "yolo":
        return scan_yolo(input_base, pattern, options.image_dir)
    return scan_tfrecords(input_base, pattern)


def scan_window(options: IngestOptions, root: str, spans: list[int]) -> Scan:
    """The window's spans of a span root read as one dataset (`spans.merge_scans`).

    Raises:
        DatasetError: a span cannot be read, or the spans cannot be read together.
    """
    return spans_lib.merge_scans(
        [(n, scan_source(options, spans_lib.span_dir(root, n), options.inner_pattern)) for n in spans]
    )


def parse_streamed_record(filename: str, raw: bytes, file_spans: Mapping[str, int]) -> SourceRecord | Reject:
    """One record of a scan's TFRecord files, its image id qualified by span when the scan merged spans."""
    record = parse_od_example(raw, filename, f"{os.path.basename(filename)}:?")
    if filename in file_spans:  # a span root: ids are qualified by span, as for COCO and VOC
        record = dataclasses.replace(record, image_id=qualified_id(file_spans[filename], record.image_id))
    return record
