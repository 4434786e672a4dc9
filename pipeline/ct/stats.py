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

from detx.components.data import features as F
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.records import Converted, DataLimits, Reject, SourceRecord, build_example
from detx.components.data.scan import Scan
from detx.components.data.sources import parse_streamed_record, scan_window
from detx.components.data.tfrecord_source import iter_records
from detx.components.model_store import TRAIN_STATS_FILENAME

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
            yield parse_streamed_record(path, raw, scan.file_spans)


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
    return scan_statistics(scan_window(options, root, list(spans)), spans, options, progress)


def converted_examples(
    scan: Scan,
    options: IngestOptions,
    keep_images: bool = False,
    progress: Callable[[int, int], None] | None = None,
    select: Callable[[tf.train.Example], bool] | None = None,
) -> list[tf.train.Example]:
    """The scan's records converted as ingestion converts them; records ingestion would quarantine are left out.

    Args:
        scan: the spans' scan (`scan_window`).
        options: the project's ingestion options (limits).
        keep_images: keep the encoded images (scoring a model needs them; summaries never do).
        progress: called with (records done, records in all) now and then.
        select: keeps only the examples it accepts (e.g. one split), so the rest never pile up in memory.
    """
    limits = DataLimits(max_pixels=options.max_pixels, clip_tolerance_px=options.clip_tolerance_px)

    def convert(record: SourceRecord | Reject) -> tf.train.Example | None:
        if isinstance(record, Reject):
            return None
        result = build_example(record, scan.resolve, scan.label_map, limits)
        if not isinstance(result, Converted) or (select is not None and not select(result.example)):
            return None
        if not keep_images:
            del result.example.features.feature[F.ENCODED]
        return result.example

    examples: list[tf.train.Example] = []
    done = 0
    # Decoding releases the GIL: threads use every core.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for example in pool.map(convert, _records(scan)):
            done += 1
            if example is not None:
                examples.append(example)
            if progress is not None and done % 200 == 0:
                progress(done, scan.num_records)
    if progress is not None:
        progress(done, scan.num_records)
    return examples


def scan_statistics(
    scan: Scan,
    spans: Sequence[int],
    options: IngestOptions,
    progress: Callable[[int, int], None] | None = None,
) -> SpanStatistics:
    """`span_statistics` of spans already scanned (`scan_window`), so a caller that needs the scan reads it once."""
    serialized = [e.SerializeToString() for e in converted_examples(scan, options, progress=progress)]
    if not serialized:
        raise ValueError(f"no record of spans {list(spans)} could be converted; run `detx run` to see why")
    return SpanStatistics(examples_statistics(serialized), tuple(spans), scan.num_records, len(serialized))


def training_statistics(version_dir: str) -> statistics_pb2.DatasetFeatureStatisticsList | None:
    """The training statistics pushed with a model version (None for versions pushed without them)."""
    path = os.path.join(version_dir, TRAIN_STATS_FILENAME)
    return tfdv.load_stats_binary(path) if tf.io.gfile.exists(path) else None
