"""What a source reader finds before any image is opened: records, label map, early rejects."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping

from detx.components.data.label_map import LabelMap
from detx.components.data.records import Reject, RejectReason, SourceRecord


class DatasetError(ValueError):
    """The dataset as a whole cannot be read (no records, unreadable annotation file, ...).

    Unlike a Reject, which quarantines one record and lets the others through,
    this stops ingestion; the message names the file and what to do.
    """


@dataclasses.dataclass(frozen=True)
class Scan:
    """The result of reading a source's annotations.

    COCO and VOC scans list their records (small: paths and boxes, no pixels).
    TFRecord scans list the files instead, because the records embed the
    images and are streamed; ids seen twice are named so that the stream can
    quarantine them.

    Attributes:
        label_map: the dataset's contiguous label map.
        resolve: source category key (COCO id, VOC name, OD label) to label id.
        records: records to convert.
        tfrecord_files: files of OD API tf.Examples to stream instead.
        duplicate_ids: image ids that occur more than once (streamed sources).
        rejects: records already rejected while reading the annotations.
        num_records: how many records the source holds, rejects included.
        category_ids: source category key (as text) to label id, for reports.
        file_spans: the span of each TFRecord file, when spans were merged
            (their streamed image ids are qualified by span).
    """

    label_map: LabelMap
    resolve: Mapping[int | str, int]
    num_records: int
    records: tuple[SourceRecord, ...] = ()
    tfrecord_files: tuple[str, ...] = ()
    duplicate_ids: frozenset[str] = frozenset()
    rejects: tuple[Reject, ...] = ()
    category_ids: Mapping[str, int] = dataclasses.field(default_factory=dict)
    file_spans: Mapping[str, int] = dataclasses.field(default_factory=dict)


def split_duplicates(records: Iterable[SourceRecord]) -> tuple[list[SourceRecord], list[Reject]]:
    """Quarantines every record whose image id is not unique.

    All copies go: with two images under one id there is no telling which one
    the annotations were made on.
    """
    records = list(records)
    counts = Counter(r.image_id for r in records)
    kept = [r for r in records if counts[r.image_id] == 1]
    rejects = [
        Reject(
            r.image_id,
            r.annotation_file or r.filename,
            RejectReason.DUPLICATE_IMAGE_ID,
            f"image id {r.image_id!r} occurs {counts[r.image_id]} times (this copy: {r.filename}); "
            "give every image a unique id",
        )
        for r in records
        if counts[r.image_id] > 1
    ]
    return kept, rejects
