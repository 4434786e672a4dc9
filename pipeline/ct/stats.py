"""TFDV statistics of a span, computed in this process, comparable with StatisticsGen's.

`detx ct check` needs the statistics of spans no pipeline has read yet. Each
record goes through ingestion's own `build_example` (the same checks, the
same `detx/stats/*` features), the image bytes are dropped, and TFDV's
in-memory statistics generator summarises the rest: no Beam pipeline, no
ML Metadata. The served model's side comes from the statistics its Pusher
stored with it (`detx_train_stats.pb`, StatisticsGen's train split).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx_bsl.coders import example_coder

from components.data import features as F
from components.data import spans as spans_lib
from components.data.records import Converted, DataLimits, Reject, SourceRecord, build_example
from components.data.scan import Scan
from components.data.tfrecord_source import iter_records, parse_od_example
from components.example_gen.executor import scan_source
from components.example_gen.options import IngestOptions
from components.pusher.executor import TRAIN_STATS_FILENAME

# The features drift and skew are measured on (image bytes are never summarised).
STATS_FEATURES = (F.TEXT, F.NUM_OBJECTS, F.BOX_AREA, F.BOX_WIDTH, F.BOX_HEIGHT, F.BRIGHTNESS, F.WIDTH, F.HEIGHT)


@dataclasses.dataclass(frozen=True)
class SpanStatistics:
    """Statistics of one or more spans.

    Attributes:
        statistics: TFDV's summary of the converted examples.
        spans: the spans summarised.
        num_records: records the spans hold.
        num_examples: records that converted (the rest would be quarantined).
    """

    statistics: statistics_pb2.DatasetFeatureStatisticsList
    spans: tuple[int, ...]
    num_records: int
    num_examples: int


def examples_statistics(serialized: Sequence[bytes]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of serialized tf.Examples, restricted to STATS_FEATURES."""
    record_batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(list(serialized))
    options = tfdv.StatsOptions(feature_allowlist=[f for f in STATS_FEATURES])
    return stats_impl.generate_statistics_in_memory(record_batch, options)


def _records(scan: Scan) -> Iterator[SourceRecord | Reject]:
    yield from scan.records
    for path in scan.tfrecord_files:
        for raw in iter_records(path):
            record = parse_od_example(raw, path, f"{os.path.basename(path)}:?")
            span = scan.file_spans.get(path)
            if span is not None and isinstance(record, SourceRecord):
                record = dataclasses.replace(record, image_id=spans_lib.qualified_id(span, record.image_id))
            yield record


def scan_spans(root: str, spans: Sequence[int], options: IngestOptions) -> Scan:
    """The spans' annotations read as one dataset, as DetectionExampleGen reads a window."""
    return spans_lib.merge_scans(
        [(n, scan_source(options, spans_lib.span_dir(root, n), options.inner_pattern)) for n in spans]
    )


def span_statistics(
    root: str,
    spans: Sequence[int],
    options: IngestOptions,
    progress: Callable[[int, int], None] | None = None,
) -> SpanStatistics:
    """Converts the spans' records as ingestion would and summarises them.

    Args:
        root: the data root.
        spans: which spans.
        options: the project's ingestion options (format, image folder, limits).
        progress: called with (records done, records in all) now and then.
    """
    scan = scan_spans(root, spans, options)
    limits = DataLimits(max_pixels=options.max_pixels, clip_tolerance_px=options.clip_tolerance_px)

    def convert(record: SourceRecord | Reject) -> bytes | None:
        if isinstance(record, Reject):
            return None
        result = build_example(record, scan.resolve, scan.label_map, limits)
        if not isinstance(result, Converted):
            return None
        del result.example.features.feature[F.ENCODED]  # summaries never need the pixels
        return result.example.SerializeToString()

    serialized: list[bytes] = []
    done = 0
    # Decoding releases the GIL: threads use every core.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for example in pool.map(convert, _records(scan)):
            done += 1
            if example is not None:
                serialized.append(example)
            if progress is not None and done % 200 == 0:
                progress(done, scan.num_records)
    if progress is not None:
        progress(done, scan.num_records)
    if not serialized:
        raise ValueError(f"no record of spans {list(spans)} in {root} could be converted; run `detx run` to see why")
    return SpanStatistics(examples_statistics(serialized), tuple(spans), scan.num_records, len(serialized))


def read_statistics(path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Reads a binary DatasetFeatureStatisticsList (StatisticsGen's FeatureStats.pb)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())


def training_statistics(version_dir: str) -> statistics_pb2.DatasetFeatureStatisticsList | None:
    """The training statistics pushed with a model version (None for versions pushed without them)."""
    path = os.path.join(version_dir, TRAIN_STATS_FILENAME)
    return read_statistics(path) if tf.io.gfile.exists(path) else None
