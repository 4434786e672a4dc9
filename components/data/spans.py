"""Data versions: a data root of numbered spans, one dataset folder each.

    <root>/span-1/    a dataset in the project's format (COCO: annotations.json + images/)
    <root>/span-2/    the next delivery of labelled images
    <root>/.adding-span-3-<hex>/   a span being added (local file systems only)

Spans are immutable once added: a pushed model's lineage names the spans it
was trained on. `add_span` (`detx data add-span`) makes the next one appear at
once (a rename locally; on object stores the annotation files are copied last,
and ExampleGen's span lookup matches annotation files, so a half-copied span
is invisible). Users' own tooling can follow the same convention.

A run reads a window of spans (the newest and the ones before it);
`merge_scans` makes one dataset of them: a union label map that keeps the
label ids of the older spans, and image ids qualified by span
(`span-2/000123`), so two deliveries may reuse ids without colliding and an
image's train/eval split never changes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import Callable, Sequence

import tensorflow as tf

from detx.components import storage
from detx.components.data.label_map import LabelMap
from detx.components.data.records import Reject, SourceRecord
from detx.components.data.scan import DatasetError, Scan

SPAN_PREFIX = "span-"
# TFX's span placeholder inside the ExampleGen pattern: `span-{SPAN}/annotations.json`.
SPAN_DIR_PATTERN = SPAN_PREFIX + "{SPAN}"
_SPAN_DIR = re.compile(r"^span-(\d+)$")
_ADDING_PREFIX = ".adding-"


def span_name(span: int) -> str:
    """The folder name of a span: `span-3`."""
    return f"{SPAN_PREFIX}{span}"


def span_dir(root: str, span: int) -> str:
    """The folder of a span under the data root."""
    return os.path.join(root, span_name(span))


def list_spans(root: str) -> list[int]:
    """The span numbers under a data root, ascending (no root: none)."""
    if not tf.io.gfile.isdir(root):
        return []
    spans = []
    for name in tf.io.gfile.listdir(root):
        m = _SPAN_DIR.match(name.rstrip("/"))
        if m:
            spans.append(int(m.group(1)))
    return sorted(spans)


def window(root: str, newest: int | None, size: int) -> list[int]:
    """The spans a run reads: `newest` (None: the newest there is) and the `size - 1` numbers before it that exist.

    Raises:
        DatasetError: the data root has no spans, or not the one asked for.
    """
    spans = list_spans(root)
    if not spans:
        raise DatasetError(
            f"{root} has no span folders ({SPAN_PREFIX}1, {SPAN_PREFIX}2, ...); add data with "
            "`detx data add-span --root ROOT --data DATASET`"
        )
    newest = spans[-1] if newest is None or newest <= 0 else newest
    if newest not in spans:
        raise DatasetError(f"span {newest} is not in {root} (it has {', '.join(map(str, spans))})")
    return [s for s in spans if newest - size < s <= newest]


@dataclasses.dataclass(frozen=True)
class AddedSpan:
    """What `add_span` did."""

    span: int
    path: str
    num_files: int


def add_span(
    root: str, dataset_dir: str, span: int | None = None, is_annotation: Callable[[str], bool] | None = None
) -> AddedSpan:
    """Copies a dataset folder into the data root as the next span, all at once.

    Args:
        root: the data root (created if missing).
        dataset_dir: the new data, laid out as the project's format expects.
        span: the span number; None takes the one after the newest.
        is_annotation: a predicate on relative paths naming the annotation
            files, copied last on object stores (None: only `.json`, `.xml`,
            `.pbtxt` and TFRecord files).

    Returns:
        The span number and where it is.

    Raises:
        DatasetError: the span number is taken (spans are never replaced).
    """
    existing = list_spans(root)
    number = span if span is not None else (existing[-1] + 1 if existing else 1)
    if number in existing:
        raise DatasetError(
            f"span {number} already exists in {root}; spans are never replaced (models' lineage names "
            "them): add the data as a new span"
        )
    last = is_annotation or _is_annotation
    target = span_dir(root, number)
    tf.io.gfile.makedirs(root)
    if not storage.is_local(root):
        count = storage.copy_tree(dataset_dir, target, last)
        return AddedSpan(number, target, count)
    local_root = storage.strip_file_scheme(root)
    staging = os.path.join(local_root, f"{_ADDING_PREFIX}{span_name(number)}-{secrets.token_hex(4)}")
    try:
        count = storage.copy_tree(dataset_dir, staging, last)
        if os.path.exists(storage.strip_file_scheme(target)):
            raise DatasetError(f"span {number} appeared in {root} while copying; add the data again")
        os.rename(staging, storage.strip_file_scheme(target))
    finally:
        if os.path.exists(staging):
            tf.io.gfile.rmtree(staging)
    return AddedSpan(number, target, count)


def _is_annotation(rel: str) -> bool:
    return rel.endswith((".json", ".xml", ".pbtxt", ".yaml", ".yml")) or "record" in os.path.basename(rel)


def qualified_id(span: int, image_id: str) -> str:
    """An image id made unique across spans."""
    return f"{span_name(span)}/{image_id}"


def _in_part(record: SourceRecord, name: str) -> SourceRecord:
    boxes = tuple(dataclasses.replace(b, category=f"{name}/{b.category}") for b in record.boxes)
    return dataclasses.replace(record, image_id=f"{name}/{record.image_id}", boxes=boxes)


def union_label_map(label_maps: Sequence[LabelMap]) -> LabelMap:
    """Every class of the spans, in the order they first appear: older spans keep their label ids."""
    names: list[str] = []
    for label_map in label_maps:
        names.extend(n for n in label_map.names if n not in names)
    return LabelMap(tuple(names))


def merge_scans(scans: Sequence[tuple[int, Scan]]) -> Scan:
    """One dataset of several spans' scans (all of one format), image ids qualified by span.

    Raises:
        DatasetError: TFRecord spans number their classes differently (their
            boxes carry label ids, which cannot be renumbered by name).
    """
    return _merge([(span_name(span), span, scan) for span, scan in scans])


def merge_parts(parts: Sequence[tuple[str, Scan]]) -> Scan:
    """One dataset of the scans of several folders of one delivery (no TFRecords), image ids qualified by folder.

    Raises:
        DatasetError: a part is read from TFRecords (their files are tied to spans).
    """
    if any(scan.tfrecord_files for _, scan in parts):
        raise DatasetError("TFRecord folders are read as spans, not as parts of one dataset")
    return _merge([(name, None, scan) for name, scan in parts])


def _merge(parts: Sequence[tuple[str, int | None, Scan]]) -> Scan:
    """Scans merged: one label map by class name, image and category ids prefixed by each part's name."""
    label_map = union_label_map([scan.label_map for _, _, scan in parts])
    resolve: dict[int | str, int] = {}
    category_ids: dict[str, int] = {}
    records: list[SourceRecord] = []
    files: list[str] = []
    file_spans: dict[str, int] = {}
    rejects: list[Reject] = []
    duplicates: set[str] = set()
    for name, span, scan in parts:
        to_union = {label: label_map.label_of(n) for label, n in scan.label_map.items()}
        if scan.tfrecord_files and span is not None:
            moved = {label: new for label, new in to_union.items() if new != label}
            if moved:
                raise DatasetError(
                    f"{name}'s label map numbers its classes differently from the spans before it "
                    f"(label id -> id in the union: {moved}); TFRecords carry label ids, so every span needs "
                    "the same label map, with new classes only at the end"
                )
            files.extend(scan.tfrecord_files)
            file_spans.update((f, span) for f in scan.tfrecord_files)
            resolve.update(scan.resolve)
        for key, label in scan.resolve.items():
            union = to_union[label]
            assert union is not None
            resolve[f"{name}/{key}"] = union
            category_ids[f"{name}/{key}"] = union
        records.extend(_in_part(r, name) for r in scan.records)
        rejects.extend(dataclasses.replace(r, image_id=f"{name}/{r.image_id}") for r in scan.rejects)
        duplicates.update(f"{name}/{i}" for i in scan.duplicate_ids)
    return Scan(
        label_map=label_map,
        resolve=resolve,
        num_records=sum(scan.num_records for _, _, scan in parts),
        records=tuple(records),
        tfrecord_files=tuple(files),
        duplicate_ids=frozenset(duplicates),
        rejects=tuple(rejects),
        category_ids=category_ids,
        file_spans=file_spans,
        notes=tuple(f"{name}: {note}" for name, _, scan in parts for note in scan.notes),
        # With --format auto each span is detected on its own: "coco+yolo" if they differ.
        data_format="+".join(dict.fromkeys(scan.data_format for _, _, scan in parts if scan.data_format)),
    )
