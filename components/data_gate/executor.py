"""DataGate's executor."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf
import tensorflow_data_validation as tfdv
from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME as ANOMALIES_FILENAME
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from detx.components.data import features as F

REPORT_FILENAME = "gate_report.json"
_SAMPLES_PER_ANOMALY = 3


class DataGateFailed(RuntimeError):
    """The examples violate the schema: the run stops before training."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One anomaly in one split.

    Attributes:
        split: the split it was found in.
        feature: the feature ("(dataset)" for dataset-level anomalies).
        kinds: TFDV anomaly type names, e.g. FLOAT_TYPE_HIGH_VALUE.
        description: TFDV's description.
        num_examples: examples showing it (None when not counted).
        sample_ids: `image/source_id`s of a few such examples.
    """

    split: str
    feature: str
    kinds: tuple[str, ...]
    description: str
    num_examples: int | None = None
    sample_ids: tuple[str, ...] = ()

    def line(self) -> str:
        """One line of the gate's message."""
        count = f"in {self.num_examples} example(s)" if self.num_examples is not None else "(examples not counted)"
        samples = f", e.g. image ids {', '.join(self.sample_ids)}" if self.sample_ids else ""
        return f"  [{self.split}] {self.feature}: {'/'.join(self.kinds)} {count}{samples} - {self.description}"


def read_findings(anomalies_artifact: Any) -> list[Finding]:
    """Lists the anomalies ExampleValidator wrote for each split."""
    findings = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), ANOMALIES_FILENAME)
        anomalies = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(anomalies.anomaly_info.items()):
            kinds = tuple(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason)
            findings.append(Finding(split, feature, kinds, info.description or info.short_description))
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            kinds = tuple(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason)
            findings.append(Finding(split, "(dataset)", kinds, info.description or info.short_description))
    return findings


def _source_id(example: Any) -> str:
    values = example.features.feature[F.SOURCE_ID].bytes_list.value
    return values[0].decode("utf-8", "replace") if values else "?"


def count_examples(findings: list[Finding], examples: Any, schema: Any, beam_args: list[str]) -> list[Finding]:
    """Adds to each finding how many examples of its split show it, and a few of their ids.

    Uses TFDV's per-example validation (`validate_examples_in_tfrecord`), which
    groups anomalous examples by "<feature>_<ANOMALY_TYPE>".
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    counted = []
    for split in sorted({f.split for f in findings}):
        pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
        options = tfdv.StatsOptions(schema=schema)
        stats, samples = tfdv.validate_examples_in_tfrecord(
            data_location=pattern,
            stats_options=options,
            pipeline_options=PipelineOptions(beam_args),
            num_sampled_examples=_SAMPLES_PER_ANOMALY,
        )
        per_key = {d.name: d.num_examples for d in stats.datasets}
        for f in (f for f in findings if f.split == split):
            keys = [f"{f.feature}_{k}" for k in f.kinds]
            n = max((per_key.get(k, 0) for k in keys), default=0)
            ids = tuple(sorted({_source_id(e) for k in keys for e in samples.get(k, [])}))[:_SAMPLES_PER_ANOMALY]
            # Dataset-level anomalies (e.g. too few examples) have no offending example.
            counted.append(dataclasses.replace(f, num_examples=n if f.feature != "(dataset)" else None, sample_ids=ids))
    return counted


def gate_message(findings: list[Finding], schema_uri: str, anomalies_uri: str) -> str:
    """The error a user sees when the gate stops the run."""
    return "\n".join(
        [
            f"DataGate: {len(findings)} anomal{'y' if len(findings) == 1 else 'ies'} in the examples; the run "
            "stopped before training.",
            *(f.line() for f in findings),
            f"Schema: {schema_uri}. Anomalies: {anomalies_uri}.",
            "Fix the data, or, if the data is right and the expectation is wrong, edit the schema template "
            "(components/schema_gen/schema.pbtxt or the pipeline's schema_file).",
        ]
    )


class Executor(base_beam_executor.BaseBeamExecutor):
    """Reads the anomalies; on any, counts them, writes the report and raises DataGateFailed."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Passes clean data; stops the run otherwise."""
        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        schema_artifact = artifact_utils.get_single_instance(input_dict["schema"])
        findings = read_findings(anomalies)
        if findings and exec_properties.get("count_examples", 1):
            schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_artifact.uri))
            findings = count_examples(findings, examples, schema, self._beam_pipeline_args or [])
        result = artifact_utils.get_single_instance(output_dict["result"])
        report = {"passed": not findings, "findings": [dataclasses.asdict(f) for f in findings]}
        # TFX deletes a failed component's output folder; a failing gate's report goes beside it.
        report_dir = result.uri.rstrip("/") + ".failed" if findings else result.uri
        tf.io.gfile.makedirs(report_dir)
        with tf.io.gfile.GFile(os.path.join(report_dir, REPORT_FILENAME), "w") as f:
            f.write(json.dumps(report, indent=1))
        result.set_int_custom_property("passed", int(not findings))
        if findings:
            raise DataGateFailed(gate_message(findings, schema_artifact.uri, anomalies.uri))
        logging.info("DataGate: no anomalies in %s", artifact_utils.decode_split_names(anomalies.split_names))
