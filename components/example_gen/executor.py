"""DetectionExampleGen's executor: reads, checks and converts records in Beam, quarantines the bad ones."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from detx.components.data import features as F
from detx.components.data import spans as spans_lib
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.records import Converted, DataLimits, Reject, RejectReason, SourceRecord, build_example
from detx.components.data.scan import Scan
from detx.components.data.sources import parse_streamed_record, scan_source, scan_window, with_span
from detx.components.example_gen.report import (
    QUARANTINE_FILENAME,
    SUMMARY_FILENAME,
    IngestSummary,
    QuarantineLimitExceeded,
)

_REJECTS = "rejects"
_NOTES = "notes"
_PARTS_DIR = ".detx-parts"
# The span a run without TFX's driver reads (an exec property of DetectionExampleGen).
DATA_SPAN_KEY = "data_span"


class _ConvertFn(beam.DoFn):
    """Converts records to tf.Examples; rejects and conversion notes go to tagged outputs."""

    def __init__(self, scan: Scan, limits: DataLimits) -> None:
        super().__init__()
        self._scan = scan
        self._limits = limits

    def process(self, record: SourceRecord | Reject) -> Iterator[Any]:
        if isinstance(record, Reject):
            yield beam.pvalue.TaggedOutput(_REJECTS, record.to_json())
            return
        if record.image_id in self._scan.duplicate_ids:
            detail = f"image id {record.image_id!r} occurs more than once in the records; give every image a unique id"
            reject = Reject(record.image_id, record.annotation_file, RejectReason.DUPLICATE_IMAGE_ID, detail)
            yield beam.pvalue.TaggedOutput(_REJECTS, reject.to_json())
            return
        result = build_example(record, self._scan.resolve, self._scan.label_map, self._limits)
        if isinstance(result, Converted):
            num_boxes = len(result.example.features.feature[F.XMIN].float_list.value)
            yield beam.pvalue.TaggedOutput(_NOTES, (num_boxes, result.num_clipped, result.conversion or ""))
            yield result.example
        else:
            yield beam.pvalue.TaggedOutput(_REJECTS, result.to_json())


class Executor(BaseExampleGenExecutor):
    """Converts COCO, VOC or OD API TFRecords into checked OD API tf.Examples.

    On top of TFX's ExampleGen (hash split, GZIP TFRecords per split) it
    writes, next to the splits: `label_map.pbtxt`, `quarantine.jsonl` (one line
    per rejected record: image id, file, reason, detail) and
    `ingest_summary.json` (counts). It fails the component, and removes the
    splits it wrote, when the quarantined share passes the configured limit.
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Returns the PTransform that turns the scanned source into tf.Examples."""
        scan, options, parts_dir = self._scan, self._options, self._parts_dir
        limits = DataLimits(max_pixels=options.max_pixels, clip_tolerance_px=options.clip_tolerance_px)

        @beam.ptransform_fn
        def _to_examples(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str) -> Any:
            del exec_properties, split_pattern  # The scan already resolved the input.
            if scan.tfrecord_files:
                records = (
                    pipeline
                    | "ListFiles" >> beam.Create(list(scan.tfrecord_files))
                    | "ReadRecords" >> beam.io.ReadAllFromTFRecord(with_filename=True)
                    | "ParseODExamples"
                    >> beam.Map(
                        lambda item, file_spans: parse_streamed_record(item[0], item[1], file_spans),
                        dict(scan.file_spans),
                    )
                )
            else:
                # reshuffle spreads the conversion over workers on distributed runners.
                records = pipeline | "ListRecords" >> beam.Create(list(scan.records), reshuffle=True)
            outputs = records | "Convert" >> beam.ParDo(_ConvertFn(scan, limits)).with_outputs(
                _REJECTS, _NOTES, main="examples"
            )
            _ = outputs[_REJECTS] | "WriteRejects" >> beam.io.WriteToText(os.path.join(parts_dir, "rejects"))
            _ = (
                outputs[_NOTES]
                | "SummarizeNotes" >> beam.CombineGlobally(_NoteCounter())
                | "WriteNotes" >> beam.io.WriteToText(os.path.join(parts_dir, "notes"))
            )
            return outputs["examples"]

        return _to_examples

    def _write_examples(self, examples: Any, exec_properties: dict[str, Any]) -> None:
        """Runs the Beam pipeline: read, check, convert, split, write."""
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        examples.split_names = artifact_utils.encode_split_names(split_names)
        with self._make_beam_pipeline() as pipeline:
            for name, split in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                _ = split | f"WriteSplit[{name}]" >> _write_split(artifact_utils.get_split_uri([examples], name))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Scans the source, runs the Beam conversion, writes the reports and applies the limit."""
        self._options = IngestOptions.from_custom_config(
            exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
        )
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        input_config = json.loads(exec_properties[standard_component_specs.INPUT_CONFIG_KEY])
        pattern = input_config["splits"][0]["pattern"]
        driver_span = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME)
        # Without TFX's driver (open-source KFP does not run it) the run's span
        # parameter says which span this is.
        span = int(driver_span if driver_span is not None else exec_properties.get(DATA_SPAN_KEY) or 0)
        spans: list[int] = []
        if self._options.span_window:
            spans = spans_lib.window(input_base, span, self._options.span_window)
            self._scan = scan_window(self._options, input_base, spans)
            examples.span = spans[-1]
            logging.info("DetectionExampleGen: reading spans %s of %s", spans, input_base)
        else:
            if driver_span is None:
                pattern = with_span(pattern, span)
                examples.span = span
            self._scan = scan_source(self._options, input_base, pattern)
        self._parts_dir = os.path.join(examples.uri, _PARTS_DIR)
        logging.info(
            "DetectionExampleGen: %d %s records under %s, %d rejected while reading annotations",
            self._scan.num_records,
            self._scan.data_format or self._options.data_format,
            input_base,
            len(self._scan.rejects),
        )
        try:
            self._write_examples(examples, exec_properties)
            rejects = list(self._scan.rejects) + [
                Reject.from_json(line) for line in _read_parts(self._parts_dir, "rejects")
            ]
            notes = Counter[str]()
            for line in _read_parts(self._parts_dir, "notes"):
                notes.update(json.loads(line))
        finally:
            if tf.io.gfile.exists(self._parts_dir):
                tf.io.gfile.rmtree(self._parts_dir)

        summary = IngestSummary.build(
            data_format=self._scan.data_format or self._options.data_format,
            input_base=input_base,
            num_records=self._scan.num_records,
            rejects=rejects,
            notes=notes,
            category_ids=dict(self._scan.category_ids),
            max_rejected_fraction=self._options.max_rejected_fraction,
            spans=spans,
            source_notes=self._scan.notes,
        )
        logging.info("DetectionExampleGen: %s", summary.one_line())
        if summary.over_limit:
            # TFX deletes a failed component's output folder, so the report goes
            # beside it, where the user can still read it after the run stopped.
            report_dir = failure_report_dir(examples.uri)
            write_reports(report_dir, rejects, summary)
            raise QuarantineLimitExceeded(summary.limit_message(os.path.join(report_dir, QUARANTINE_FILENAME)))
        write_reports(examples.uri, rejects, summary)
        self._scan.label_map.write(os.path.join(examples.uri, LABEL_MAP_FILENAME))
        summary.set_custom_properties(examples)


@beam.ptransform_fn
def _write_split(examples: beam.PCollection, split_uri: str) -> beam.pvalue.PDone:
    """Writes one split as GZIP TFRecords of serialized tf.Examples, in TFX's file layout.

    TFX's own WriteSplit reshuffles before writing, which holds every encoded
    image of the split in memory on the DirectRunner. Training shuffles its
    input anyway, so detx writes the examples as they stream by.
    """
    return (
        examples
        | "Serialize" >> beam.Map(lambda e: e.SerializeToString(deterministic=True))
        | "Write" >> beam.io.WriteToTFRecord(os.path.join(split_uri, "data_tfrecord"), file_name_suffix=".gz")
    )


def failure_report_dir(examples_uri: str) -> str:
    """Where the reports of a run stopped by the quarantine limit are kept."""
    return examples_uri.rstrip("/") + ".rejected"


def write_reports(directory: str, rejects: list[Reject], summary: IngestSummary) -> None:
    """Writes `quarantine.jsonl` (every rejected record) and `ingest_summary.json`."""
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, QUARANTINE_FILENAME), "w") as f:
        f.write("".join(r.to_json() + "\n" for r in sorted(rejects, key=lambda r: (r.image_id, r.file))))
    with tf.io.gfile.GFile(os.path.join(directory, SUMMARY_FILENAME), "w") as f:
        f.write(summary.to_json())


class _NoteCounter(beam.CombineFn):
    """Sums the per-example conversion notes into one JSON object."""

    def create_accumulator(self) -> Counter[str]:
        return Counter()

    def add_input(self, acc: Counter[str], note: tuple[int, int, str]) -> Counter[str]:
        num_boxes, num_clipped, conversion = note
        acc["examples"] += 1
        acc["boxes"] += num_boxes
        acc["boxes_clipped"] += num_clipped
        if conversion:
            acc[f"converted:{conversion}"] += 1
        return acc

    def merge_accumulators(self, accumulators: Any) -> Counter[str]:
        total: Counter[str] = Counter()
        for acc in accumulators:
            total.update(acc)
        return total

    def extract_output(self, acc: Counter[str]) -> str:
        return json.dumps(dict(acc), sort_keys=True)


def _read_parts(parts_dir: str, prefix: str) -> Iterator[str]:
    for path in sorted(tf.io.gfile.glob(os.path.join(parts_dir, f"{prefix}-*"))):
        with tf.io.gfile.GFile(path) as f:
            yield from (line for line in f.read().splitlines() if line.strip())
