"""What the last local run did, read back from ML Metadata and its artifacts, as a short summary."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_data_validation as tfdv
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from detx.components.data import features as F
from detx.components.example_gen.report import QUARANTINE_FILENAME, SUMMARY_FILENAME, IngestSummary

_STATES = {v: k.lower() for k, v in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    """One component's execution in a pipeline run.

    Attributes:
        node: the component id.
        state: "complete", "cached", "failed", ...
        outputs: output key to artifact URIs.
        seconds: wall time from the execution's registration to its last update in ML Metadata.
    """

    node: str
    state: str
    outputs: dict[str, list[str]]
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    """Examples and boxes of one split, from its statistics."""

    split: str
    num_examples: int
    num_boxes: int
    boxes_per_class: dict[str, int]


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    """Opens a SQLite ML Metadata database read-only."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def latest_run(metadata_path: str, pipeline_name: str) -> list[ComponentRun]:
    """The executions of the newest run of `pipeline_name`, in execution order.

    Raises:
        LookupError: the pipeline has never run in this database.
    """
    store = open_store(metadata_path)
    runs = [
        c
        for c in store.get_contexts_by_type("pipeline_run")
        if any(p.name == pipeline_name for p in store.get_parent_contexts_by_context(c.id))
    ]
    if not runs:
        raise LookupError(f"pipeline {pipeline_name!r} has no runs in {metadata_path}")
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id([ev.artifact_id for ev in events])}
    result = []
    for e in executions:
        node = next(
            (c.name.split(".", 1)[-1] for c in store.get_contexts_by_execution(e.id) if c.type == "node"),
            e.type,
        )
        outputs: dict[str, list[str]] = {}
        for ev in events:
            if ev.execution_id == e.id and ev.type in (
                metadata_store_pb2.Event.OUTPUT,
                metadata_store_pb2.Event.PENDING_OUTPUT,
            ):
                key = ev.path.steps[0].key if ev.path.steps else "?"
                outputs.setdefault(key, []).append(artifacts[ev.artifact_id].uri)
        seconds = max(0.0, (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000)
        result.append(ComponentRun(node, _STATES.get(e.last_known_state, "unknown"), outputs, seconds))
    return result


def split_counts(statistics_uri: str) -> list[SplitCounts]:
    """Examples, boxes and boxes per class of each split, from StatisticsGen's output."""
    counts = []
    for path in sorted(tf.io.gfile.glob(os.path.join(statistics_uri, "Split-*", "FeatureStats.pb"))):
        split = os.path.basename(os.path.dirname(path)).removeprefix("Split-")
        stats = tfdv.load_stats_binary(path).datasets[0]
        by_name = {"/".join(f.path.step): f for f in stats.features}
        xmin = by_name.get(F.XMIN)
        boxes = int(xmin.num_stats.common_stats.tot_num_values) if xmin is not None else 0
        text = by_name.get(F.TEXT)
        per_class = {v.value: int(v.frequency) for v in text.string_stats.top_values} if text is not None else {}
        counts.append(SplitCounts(split, int(stats.num_examples), boxes, dict(sorted(per_class.items()))))
    return counts


def _output(runs: Sequence[ComponentRun], node: str, key: str) -> str | None:
    for r in runs:
        if r.node == node and r.outputs.get(key):
            return r.outputs[key][0]
    return None


def push_record(runs: Sequence[ComponentRun]) -> dict[str, Any] | None:
    """What the run's Pusher did (its `detx_push.json`), or None when it did not run."""
    from detx.components.pusher.executor import PUSH_REPORT_FILENAME

    pushed_uri = _output(runs, "DetectionPusher", "pushed_model")
    if not pushed_uri or not tf.io.gfile.exists(os.path.join(pushed_uri, PUSH_REPORT_FILENAME)):
        return None
    with tf.io.gfile.GFile(os.path.join(pushed_uri, PUSH_REPORT_FILENAME)) as f:
        record: dict[str, Any] = json.load(f)
    return record


def _evaluation_lines(runs: Sequence[ComponentRun]) -> list[str]:
    """Evaluation numbers, the verdict and its reasons, and what the Pusher did."""
    from detx.components.evaluator.report import REPORT_FILENAME, EvaluationReport
    from detx.components.infra_validator.report import REPORT_FILENAME as INFRA_REPORT
    from detx.components.infra_validator.report import InfraReport
    from detx.components.tflite.report import REPORT_FILE as TFLITE_REPORT
    from detx.components.tflite.report import TFLiteReport

    lines = []
    blessing_uri = _output(runs, "DetectionEvaluator", "blessing")
    if blessing_uri and tf.io.gfile.exists(os.path.join(blessing_uri, REPORT_FILENAME)):
        report = EvaluationReport.read(blessing_uri)
        m = report.metrics
        # TFMA adds `<name>_diff` (candidate minus baseline) when there is a baseline; the classes are the rest.
        per_class = ", ".join(
            f"{k.removeprefix('ap/')} {v:.3f}"
            for k, v in sorted(m.items())
            if k.startswith("ap/") and not k.endswith("_diff")
        )
        lines.append(
            f"Evaluation ({int(m.get('example_count', 0))} eval images): mAP {m.get('map', float('nan')):.3f}, "
            f"mAP@0.5 {m.get('map_50', float('nan')):.3f}, mAP@0.75 {m.get('map_75', float('nan')):.3f}, "
            f"AR@100 {m.get('ar_100', float('nan')):.3f}; AP per class: {per_class}"
        )
        lines.append(f"  TFMA results: {_output(runs, 'DetectionEvaluator', 'evaluation')}")
        lines.append(("Blessed" if report.blessed else "Not blessed") + ": " + report.verdict().split(": ", 1)[1])
    tflite_uri = _output(runs, "DetectionTFLiteConverter", "tflite_models")
    if tflite_uri and tf.io.gfile.exists(os.path.join(tflite_uri, TFLITE_REPORT)):
        lines.append("TFLite models (" + tflite_uri + "):")
        lines.extend(f"  {line}" for line in TFLiteReport.read(tflite_uri).summary_lines())
    infra_uri = _output(runs, "DetectionInfraValidator", "blessing")
    if infra_uri and tf.io.gfile.exists(os.path.join(infra_uri, INFRA_REPORT)):
        verdict = InfraReport.read(infra_uri).verdict()
        lines.append(verdict[0].upper() + verdict[1:])
    push = push_record(runs)
    if push is not None:
        if push.get("pushed") and push.get("pending"):
            lines.append(
                f"Pushed: version {push['version']} -> {push['path']}, waiting for approval "
                f"(serve it: detx models approve {push['version']} --by NAME --reason TEXT; or detx models reject)"
            )
        elif push.get("pushed"):
            lines.append(f"Pushed: version {push['version']} -> {push['path']} (now the served version)")
        else:
            before = push.get("served_before")
            served = f"; the served version stays {before}" if before is not None else "; nothing is served yet"
            lines.append(
                f"Pushed: nothing ({push.get('reason', 'not blessed')}){served}; destination {push['destination']}"
            )
    return lines


def format_summary(runs: Sequence[ComponentRun]) -> str:
    """A short account of a validation run: data counts, quarantine, per-split counts, gate verdict."""
    lines = []
    examples_uri = _output(runs, "DetectionExampleGen", "examples")
    if examples_uri and tf.io.gfile.exists(os.path.join(examples_uri, SUMMARY_FILENAME)):
        with tf.io.gfile.GFile(os.path.join(examples_uri, SUMMARY_FILENAME)) as f:
            ingest = IngestSummary.from_json(f.read())
        lines.append(f"Data: {ingest.one_line()}")
        if ingest.num_rejected:
            lines.append(f"  quarantine report: {os.path.join(examples_uri, QUARANTINE_FILENAME)}")
    stats_uri = _output(runs, "StatisticsGen", "statistics")
    if stats_uri:
        for c in split_counts(stats_uri):
            per_class = ", ".join(f"{k} {v}" for k, v in c.boxes_per_class.items())
            lines.append(f"  {c.split}: {c.num_examples} examples, {c.num_boxes} boxes ({per_class})")
    gate = next((r for r in runs if r.node == "DataGate"), None)
    if gate is not None and gate.state in ("complete", "cached"):
        lines.append("Validation: no anomalies against the schema; DataGate passed.")
    model_uri = _output(runs, "Trainer", "model")
    run_uri = _output(runs, "Trainer", "model_run")
    if model_uri and run_uri:
        history_path = os.path.join(run_uri, "history.json")
        if tf.io.gfile.exists(history_path):
            with tf.io.gfile.GFile(history_path) as f:
                losses = json.load(f).get("loss", [])
            if losses:
                lines.append(f"Training: loss {losses[0]:.3f} (first checkpoint) -> {losses[-1]:.3f} (last)")
        lines.append(f"Model: {os.path.join(model_uri, 'Format-Serving')} (TensorBoard: {run_uri}/logs)")
    lines.extend(_evaluation_lines(runs))
    state = ", ".join(f"{r.node} {r.state}" for r in runs)
    lines.append(f"Components: {state}")
    return "\n".join(lines)
