"""What a source reader finds before any image is opened: records, label map, early rejects."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import tensorflow as tf

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
        notes: what the reader decided about the dataset's layout, one
            sentence each, for the summary (where the images were found,
            categories left out, the box convention).
        data_format: the format the source was read as (what `--format auto` found).
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
    notes: tuple[str, ...] = ()
    data_format: str = ""


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


_T = TypeVar("_T")

# Images checked per candidate layout: enough to tell layouts apart, few enough
# that a bucket answers quickly (each check is one request on an object store).
LAYOUT_SAMPLE = 24


def choose_layout(
    layouts: Sequence[Callable[[_T], str]], items: Sequence[_T], sample_size: int = LAYOUT_SAMPLE
) -> tuple[int, int, int]:
    """Picks the image layout that holds the files, by looking for a sample of them.

    Labelling tools disagree on what an image reference is relative to (the
    image folder, the annotation file's folder, ...). The same layout is used
    for the whole dataset: per-image guessing could pair an annotation with a
    same-named file from the wrong folder.

    Args:
        layouts: candidate functions from an item to its image path, in order of preference.
        items: the dataset's image references; an even spread of `sample_size` is checked.
        sample_size: how many items to look for.

    Returns:
        (index of the layout that finds the most sampled files, the first on
        ties and 0 when none finds any; files found; files sampled)
    """
    if not items:
        return 0, 0, 0
    n = min(sample_size, len(items))
    sample = [items[i * len(items) // n] for i in range(n)]
    best, best_found = 0, -1
    for index, path_of in enumerate(layouts):
        found = sum(1 for item in sample if tf.io.gfile.exists(path_of(item)))
        if found > best_found:
            best, best_found = index, found
        if found == n:  # every sampled file is there: no later layout can do better
            break
    return best, best_found, n


def split_duplicate_files(records: Iterable[SourceRecord]) -> tuple[list[SourceRecord], list[Reject]]:
    """Quarantines every record whose image file is also listed under another image id.

    Exports merged from several tasks can list one photo twice with its boxes
    split between the entries; each copy alone would teach the model that the
    other copy's objects are background. The same id listed twice is left to
    `split_duplicates`.
    """
    records = list(records)
    ids_by_path: dict[str | None, set[str]] = {}
    for r in records:
        ids_by_path.setdefault(r.image_path, set()).add(r.image_id)
    kept, rejects = [], []
    for r in records:
        ids = ids_by_path[r.image_path]
        if r.image_path is None or len(ids) == 1:
            kept.append(r)
            continue
        rejects.append(
            Reject(
                r.image_id,
                r.annotation_file or r.filename,
                RejectReason.DUPLICATE_IMAGE_FILE,
                f"image file {r.image_path} is listed under {len(ids)} image ids ({', '.join(sorted(ids))}); "
                "its boxes may be split between the entries: list each image once",
            )
        )
    return kept, rejects
