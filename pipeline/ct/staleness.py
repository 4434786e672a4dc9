"""The cost of staleness: the served model's mAP@0.5 on each new span's labelled eval split, as a curve.

A served model meets newer data every day. Each new span arrives labelled, so
its eval split (the images ExampleGen would put in `eval`: TFX's own hash
partition of the image id, with the project's `data.splits`) says what the
model in production scores on today's data, long before a retraining. The
difference from the version's own eval mAP@0.5 (its lineage) is the cost of
staleness, one number per (version, span); the points are kept in the state
directory (`ct_quality.json`, `quality.py`), so a re-run scores nothing twice.

Scoring is the one COCO scoring detx has: `coco_metrics.evaluate` (pycocotools'
COCOeval) on the version's `tf_example` signature, as the release re-check
does (components/release/recheck.py).

Boxes of classes the version does not know are left out (counted): it cannot
detect them, and the "new class" signal already says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf
from google.protobuf import message

# TFX's own partition function (tfx/components/example_gen/base_example_gen_executor.py,
# `_PartitionFn`: sha256 of the partition feature, modulo the buckets): calling it is
# the only way to be sure a span's eval split is the one ExampleGen writes.
from tfx.components.example_gen import base_example_gen_executor as tfx_example_gen

from detx.components.data import features as F
from detx.components.data import spans as spans_lib
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.data.sources import scan_window
from detx.components.evaluation.coco_metrics import evaluate
from detx.components.evaluator.eval_config import SIGNATURE
from detx.components.example_gen.component import split_config
from detx.pipeline.ct import stats

EVAL_SPLIT = "eval"  # the split the Evaluator scores
MAP_50 = "map_50"  # the Evaluator's mAP@0.5 in a version's lineage metrics (tfma_coco.MAP_50)
# The per-box features of an OD API tf.Example as ingestion writes them (records.build_example).
_PER_BOX = (
    F.XMIN,
    F.XMAX,
    F.YMIN,
    F.YMAX,
    F.LABEL,
    F.TEXT,
    F.IS_CROWD,
    F.BOX_WIDTH,
    F.BOX_HEIGHT,
    F.BOX_AREA,
    F.BOX_ASPECT,
)


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of the staleness curve.

    Attributes:
        version: the served version scored.
        span: the span whose eval split it was scored on.
        span_date: when the span was added (its folder's time, UTC ISO; "" when the store has none).
        age_days: how much newer the span is than the version's push (None: a date is unknown).
        eval_images: images of the span in the eval split.
        map_50: mAP@0.5 on them (None: no image of the span falls in the eval split).
        version_map_50: the version's own eval mAP@0.5 (its lineage; None: not recorded).
        left_out_boxes: boxes of classes the version does not know, left out of the scoring.
        scored_at: when it was scored (UTC ISO).
    """

    version: int
    span: int
    span_date: str
    age_days: float | None
    eval_images: int
    map_50: float | None
    version_map_50: float | None
    left_out_boxes: int
    scored_at: str

    @property
    def drop(self) -> float | None:
        """The version's own eval mAP@0.5 minus this span's (positive: worse on the new data)."""
        if self.map_50 is None or self.version_map_50 is None:
            return None
        return self.version_map_50 - self.map_50

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the drop."""
        return {**dataclasses.asdict(self), "drop": self.drop}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Point:
        """The inverse of `to_dict`."""
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def label_names(version_dir: str) -> list[str]:
    """The class names a version knows (its `assets/label_map.pbtxt`; [] without one)."""
    path = os.path.join(version_dir, "assets", LABEL_MAP_FILENAME)
    return list(LabelMap.read(path).names) if tf.io.gfile.exists(path) else []


def eval_selector(splits: Mapping[str, int]) -> Callable[[tf.train.Example], bool]:
    """Whether an example falls in the eval split of `splits` (split name -> hash buckets), as in ExampleGen.

    Raises:
        ValueError: `splits` has no eval split.
    """
    if EVAL_SPLIT not in splits:
        raise ValueError(
            f"data.splits {dict(splits)} has no {EVAL_SPLIT!r} split: the staleness curve scores the eval split"
        )
    config = split_config(splits).split_config
    buckets, total = [], 0
    for split in config.splits:  # cumulative, in the config's order, as TFX's GenerateExamplesByBeam builds them
        total += split.hash_buckets
        buckets.append(total)
    index = [s.name for s in config.splits].index(EVAL_SPLIT)

    def select(example: tf.train.Example) -> bool:
        return bool(tfx_example_gen._PartitionFn(example, len(buckets), buckets, config) == index)

    return select


def relabel(example: tf.train.Example, known: Sequence[str]) -> int:
    """Renumbers an example's boxes by the version's label map, leaving out unknown classes; returns how many.

    A span's own label map may number classes differently from the version's
    (a class it lacks, a new one), and the model answers in the version's ids.
    """
    ids = {name: i + 1 for i, name in enumerate(known)}
    feature = example.features.feature
    names = [t.decode() for t in feature[F.TEXT].bytes_list.value]
    keep = [i for i, name in enumerate(names) if name in ids]
    for key in _PER_BOX:
        if key not in feature:
            continue
        values = feature[key]
        kind = values.WhichOneof("kind")
        if kind is None:
            continue
        listed = list(getattr(values, kind).value)
        if len(listed) != len(names):
            continue  # not per box (cannot happen for build_example's records): left alone
        del getattr(values, kind).value[:]
        getattr(values, kind).value.extend(listed[i] for i in keep)
    del feature[F.LABEL].int64_list.value[:]
    feature[F.LABEL].int64_list.value.extend(ids[names[i]] for i in keep)
    del feature[F.NUM_OBJECTS].int64_list.value[:]
    feature[F.NUM_OBJECTS].int64_list.value.append(len(keep))
    return len(names) - len(keep)


def span_date(root: str, span: int) -> str:
    """When a span was added: its folder's modification time (`add_span` renames it into place whole)."""
    try:
        stat = tf.io.gfile.stat(spans_lib.span_dir(root, span))
    except tf.errors.OpError:
        return ""
    if not stat.mtime_nsec:
        return ""  # object stores have no folder times
    moment = datetime.datetime.fromtimestamp(stat.mtime_nsec / 1e9, datetime.UTC)
    return moment.isoformat(timespec="seconds")


def _days_between(earlier: str, later: str) -> float | None:
    try:
        start, end = datetime.datetime.fromisoformat(earlier), datetime.datetime.fromisoformat(later)
    except (TypeError, ValueError):
        return None
    return (end - start).total_seconds() / 86400


def score_spans(
    version: int,
    version_dir: str,
    lineage: Mapping[str, Any],
    root: str,
    spans: Sequence[int],
    options: IngestOptions,
    splits: Mapping[str, int],
    echo: Callable[[str], None] | None = None,
) -> list[Point]:
    """Scores a version on each span's eval split (no cache: see `quality.staleness_curve`).

    Args:
        version: the version number.
        version_dir: its directory.
        lineage: its lineage (pushed_at, metrics).
        root: the span root.
        spans: the spans to score.
        options: the project's ingestion options.
        splits: the project's `data.splits`.
        echo: progress lines.

    Raises:
        ValueError: `splits` has no eval split, or the version knows no classes or cannot be loaded.
        detx.components.data.scan.DatasetError: a span cannot be read.
    """
    known = label_names(version_dir)
    if not known:
        raise ValueError(f"{version_dir} has no {LABEL_MAP_FILENAME} in assets/: its classes are unknown")
    select = eval_selector(splits)
    own = lineage.get("metrics", {}).get(MAP_50)
    pushed_at = str(lineage.get("pushed_at", ""))
    signature = None
    points = []
    for span in spans:
        scan = scan_window(options, root, [span])

        def progress(done: int, total: int, span: int = span) -> None:
            if echo is not None:
                echo(f"  reading span {span} for its eval split: {done}/{total} images")

        examples = stats.converted_examples(scan, options, keep_images=True, progress=progress, select=select)
        left_out = sum(relabel(e, known) for e in examples)
        value = None
        if examples:
            if signature is None:  # load once, and only when there is something to score
                signature = _signature(version, version_dir)
            value = _map_50(signature, [e.SerializeToString() for e in examples], len(known))
        date = span_date(root, span)
        point = Point(
            version=version,
            span=span,
            span_date=date,
            age_days=_days_between(pushed_at, date) if date else None,
            eval_images=len(examples),
            map_50=value,
            version_map_50=float(own) if own is not None else None,
            left_out_boxes=left_out,
            scored_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )
        if echo is not None:
            echo(f"  staleness: {sentence(point)}")
        points.append(point)
    return points


def _signature(version: int, version_dir: str) -> Any:
    """The version's `tf_example` signature.

    Raises:
        ValueError: the version cannot be loaded (not a SavedModel, corrupt) or has no such signature.
    """
    try:
        model = tf.saved_model.load(version_dir)
    except (OSError, ValueError, tf.errors.OpError, message.DecodeError) as e:
        raise ValueError(f"version {version} ({version_dir}) cannot be loaded as a SavedModel: {e}") from e
    if SIGNATURE not in model.signatures:
        raise ValueError(
            f"version {version} ({version_dir}) has no {SIGNATURE!r} signature (signatures: "
            f"{', '.join(model.signatures) or 'none'}); export it with detx's exporter to score it"
        )
    return model.signatures[SIGNATURE]


def _map_50(signature: Any, examples: list[bytes], num_classes: int) -> float:
    """COCO mAP@0.5 of a `tf_example` signature on serialized examples (the release re-check's scoring)."""
    return float(evaluate(lambda batch: signature(examples=batch), examples, num_classes).map_50)


def sentence(point: Point) -> str:
    """E.g. `version 1 on span 3: mAP@0.5 0.310 on 58 eval images (own 0.456, -0.146)`."""
    head = f"version {point.version} on span {point.span}"
    if point.map_50 is None:
        return f"{head}: no image of the span falls in the eval split; not scored"
    own = "own mAP@0.5 not recorded"
    if point.version_map_50 is not None and point.drop is not None:
        own = f"own {point.version_map_50:.3f}, {-point.drop:+.3f}"
    left = f"; {point.left_out_boxes} boxes of unknown classes left out" if point.left_out_boxes else ""
    return f"{head}: mAP@0.5 {point.map_50:.3f} on {point.eval_images} eval images ({own}){left}"


def table(points: Sequence[Point]) -> str:
    """The curve as a plain-text table, oldest span first."""
    rows = [("span", "added", "age (days)", "version", "eval images", "mAP@0.5", "own mAP@0.5", "drop")]
    for p in sorted(points, key=lambda p: (p.version, p.span)):
        rows.append(
            (
                str(p.span),
                p.span_date[:10] or "?",
                f"{round(p.age_days, 1) + 0.0:.1f}" if p.age_days is not None else "?",  # + 0.0: no "-0.0"
                str(p.version),
                str(p.eval_images),
                f"{p.map_50:.3f}" if p.map_50 is not None else "-",
                f"{p.version_map_50:.3f}" if p.version_map_50 is not None else "?",
                f"{p.drop:+.3f}" if p.drop is not None else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("    " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
