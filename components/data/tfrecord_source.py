"""Reads TFRecords of tf.Examples that already follow the Object Detection API layout.

Such records are not trusted as they are: each is parsed back into a
`SourceRecord` and goes through the same checks as COCO and VOC data, so a bad
box or a corrupt image in a user's TFRecord is quarantined, not trained on.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.data.records import Reject, RejectReason, SourceBox, SourceRecord
from detx.components.data.scan import DatasetError, Scan

DEFAULT_PATTERN = "*.*record*"


def _compression(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


def iter_records(path: str) -> Iterator[bytes]:
    """Yields the serialized records of one TFRecord file (GZIP if it ends in .gz)."""
    for raw in tf.data.TFRecordDataset(path, compression_type=_compression(path)).as_numpy_iterator():
        yield bytes(raw)


def _get(example: tf.train.Example, key: str) -> list[bytes] | list[float] | list[int]:
    if key not in example.features.feature:
        return []
    f = example.features.feature[key]
    kind = f.WhichOneof("kind")
    return list(getattr(f, kind).value) if kind else []


def _image_id(example: tf.train.Example, fallback: str) -> str:
    ids = _get(example, F.SOURCE_ID) or _get(example, F.FILENAME)
    return ids[0].decode("utf-8", "replace") if ids and isinstance(ids[0], bytes) else fallback


def parse_od_example(raw: bytes, file: str, fallback_id: str) -> SourceRecord | Reject:
    """Turns one serialized OD API tf.Example back into a source record."""
    try:
        example = tf.train.Example.FromString(raw)
    except Exception:  # protobuf raises DecodeError, or RuntimeWarning-derived errors on garbage.
        return Reject(fallback_id, file, RejectReason.BAD_ANNOTATION, f"a record in {file} is not a tf.Example")
    image_id = _image_id(example, fallback_id)
    encoded = _get(example, F.ENCODED)
    if not encoded:
        return Reject(image_id, file, RejectReason.MISSING_IMAGE, f"record {image_id!r} in {file} has no {F.ENCODED}")
    coords = [_get(example, k) for k in (F.XMIN, F.YMIN, F.XMAX, F.YMAX)]
    labels = _get(example, F.LABEL)
    texts = [t.decode("utf-8", "replace") for t in _get(example, F.TEXT) if isinstance(t, bytes)]
    n = len(coords[0])
    if any(len(c) != n for c in coords) or len(labels) != n or (texts and len(texts) != n):
        return Reject(
            image_id,
            file,
            RejectReason.BAD_BOX,
            f"record {image_id!r} in {file} has box lists of different lengths "
            f"(xmin/ymin/xmax/ymax/label/text: {[len(c) for c in coords]}, {len(labels)}, {len(texts)})",
        )
    crowd = _get(example, F.IS_CROWD) or [0] * n
    boxes = tuple(
        SourceBox(
            int(labels[i]),
            float(coords[0][i]),
            float(coords[1][i]),
            float(coords[2][i]),
            float(coords[3][i]),
            is_crowd=bool(crowd[i]) if i < len(crowd) else False,
            text=texts[i] if texts else None,
        )
        for i in range(n)
    )
    height, width = _get(example, F.HEIGHT), _get(example, F.WIDTH)
    filenames = _get(example, F.FILENAME)
    filename = filenames[0].decode("utf-8", "replace") if filenames and isinstance(filenames[0], bytes) else image_id
    return SourceRecord(
        image_id=image_id,
        filename=filename,
        boxes=boxes,
        image_bytes=bytes(encoded[0]) if isinstance(encoded[0], bytes) else None,
        declared_size=(int(width[0]), int(height[0])) if width and height else None,
        normalized_boxes=True,
        annotation_file=file,
    )


def _label_map_from_records(pairs: Counter[tuple[int, str]], input_dir: str) -> LabelMap:
    names: dict[int, set[str]] = {}
    for label, text in pairs:
        names.setdefault(label, set()).add(text)
    advice = f"put the dataset's {LABEL_MAP_FILENAME} (OD API StringIntLabelMap) in {input_dir}"
    conflicts = {k: sorted(v) for k, v in names.items() if len(v) > 1}
    if conflicts:
        raise DatasetError(f"labels carry different class texts {conflicts}; {advice}")
    if not names or sorted(names) != list(range(1, len(names) + 1)) or any("" in v for v in names.values()):
        raise DatasetError(
            f"cannot derive a label map from the records (labels {sorted(names)}, texts needed for each); {advice}"
        )
    return LabelMap(tuple(next(iter(names[i])) for i in sorted(names)))


def scan_tfrecords(input_dir: str, pattern: str = DEFAULT_PATTERN) -> Scan:
    """Lists the record files and reads ids and labels once, for duplicates and the label map.

    The label map is `label_map.pbtxt` in `input_dir`; without one it is derived
    from the (label, text) pairs in the records, which must be consistent.

    Raises:
        DatasetError: no files match, or no usable label map.
    """
    files = tuple(sorted(f for f in tf.io.gfile.glob(os.path.join(input_dir, pattern)) if not f.endswith(".pbtxt")))
    if not files:
        raise DatasetError(f"no TFRecord files match {os.path.join(input_dir, pattern)}")
    ids: Counter[str] = Counter()
    pairs: Counter[tuple[int, str]] = Counter()
    num_records = 0
    for path in files:
        try:
            for raw in iter_records(path):
                num_records += 1
                record = parse_od_example(raw, path, f"{os.path.basename(path)}:{num_records}")
                ids[record.image_id] += 1
                if isinstance(record, SourceRecord):
                    pairs.update((int(b.category), b.text or "") for b in record.boxes)
        except tf.errors.DataLossError as e:
            raise DatasetError(
                f"{path} is not a readable TFRecord file (truncated or not TFRecord): {e.message}"
            ) from e
    if num_records == 0:
        raise DatasetError(f"the TFRecord files {list(files)} hold no records")
    label_map_path = os.path.join(input_dir, LABEL_MAP_FILENAME)
    if tf.io.gfile.exists(label_map_path):
        label_map = LabelMap.read(label_map_path)
    else:
        label_map = _label_map_from_records(pairs, input_dir)
    resolve: dict[int | str, int] = {label: label for label, _ in label_map.items()}
    return Scan(
        label_map=label_map,
        resolve=resolve,
        num_records=num_records,
        tfrecord_files=files,
        duplicate_ids=frozenset(i for i, c in ids.items() if c > 1),
        category_ids={str(k): v for k, v in resolve.items()},
    )
