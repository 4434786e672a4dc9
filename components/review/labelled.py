"""What the review queue knows of the labelled data: boxes per class and a dHash of every labelled image.

The data is read as a run reads it (`sources.scan_source` / `scan_window`,
every span of a span root), so the counts are of the same records the
Trainer gets; no image is converted, only hashed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator

import tensorflow as tf

from detx.components.data import spans as spans_lib
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.records import Reject, SourceRecord
from detx.components.data.scan import DatasetError, Scan
from detx.components.data.sources import parse_streamed_record, scan_source, scan_window
from detx.components.data.tfrecord_source import iter_records
from detx.components.review import dhash
from detx.components.review.predictions import ReviewError


@dataclasses.dataclass(frozen=True)
class LabelledData:
    """The labelled data's class counts and image hashes.

    Attributes:
        root: the dataset or span root read.
        spans: the spans read (empty for a plain dataset).
        boxes_per_class: labelled boxes of each class name (every class of the label map, 0 included).
        hashes: (image id, fingerprint) of every readable labelled image.
        unreadable: labelled images that could not be hashed.
    """

    root: str
    spans: tuple[int, ...]
    boxes_per_class: dict[str, int]
    hashes: tuple[tuple[str, dhash.Fingerprint], ...]
    unreadable: int

    @property
    def num_boxes(self) -> int:
        """Labelled boxes in all."""
        return sum(self.boxes_per_class.values())


def _scan(root: str, fmt: str) -> tuple[Scan, tuple[int, ...]]:
    spans = spans_lib.list_spans(root)
    if spans:
        return scan_window(IngestOptions(data_format=fmt, span_window=len(spans)), root, spans), tuple(spans)
    return scan_source(IngestOptions(data_format=fmt), root, IngestOptions(data_format=fmt).inner_pattern), ()


def _records(scan: Scan) -> Iterator[SourceRecord]:
    yield from scan.records
    for path in scan.tfrecord_files:
        for raw in iter_records(path):
            record = parse_streamed_record(path, raw, scan.file_spans)
            if not isinstance(record, Reject):
                yield record


def _image_bytes(record: SourceRecord) -> bytes:
    if record.image_bytes is not None:
        return record.image_bytes
    assert record.image_path is not None
    with tf.io.gfile.GFile(record.image_path, "rb") as f:
        return bytes(f.read())


def read_labelled(root: str, fmt: str = "auto", progress: Callable[[int, int], None] | None = None) -> LabelledData:
    """Counts the boxes of each class and hashes every image of a dataset or span root.

    Args:
        root: a dataset folder or a span root (span-1/, span-2/, ...; every span is read).
        fmt: its format (`auto` detects it).
        progress: called with (images hashed, images in all) now and then.

    Raises:
        ReviewError: the data cannot be read (the message is the reader's).
    """
    try:
        scan, spans = _scan(root, fmt)
    except DatasetError as e:
        raise ReviewError(f"--data {root}: {e}") from e
    counts: Counter[str] = Counter({name: 0 for name in scan.label_map.names})
    hashes: list[tuple[str, dhash.Fingerprint]] = []
    unreadable = 0
    total = scan.num_records
    for n, record in enumerate(_records(scan), start=1):
        for box in record.boxes:
            label = scan.resolve.get(box.category, scan.resolve.get(str(box.category)))
            if label is not None:
                counts[scan.label_map.name_of(label)] += 1
        try:
            hashes.append((record.image_id, dhash.fingerprint(_image_bytes(record))))
        except (OSError, ValueError):  # counted: a missing or corrupt labelled image cannot be a duplicate's twin
            unreadable += 1
        if progress is not None and (n % 200 == 0 or n == total):
            progress(n, total)
    return LabelledData(root, spans, dict(counts), tuple(hashes), unreadable)
