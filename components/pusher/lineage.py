"""What the Pusher records with a version (`detx_lineage.json`), and the model card made from it."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
from tfx import types

from detx.components.evaluator.report import EvaluationReport
from detx.components.example_gen.report import SUMMARY_FILENAME
from detx.components.infra_validator.report import InfraReport
from detx.components.model_card import facts, render
from detx.components.model_store import LineageFiles, ModelStore
from detx.components.release.options import ReleaseOptions

# The Pusher's exec properties for releasing: the approval mode (a run parameter) and the card texts (JSON).
APPROVAL = "approval"
RELEASE = "release"


def ingest_summary(examples_uri: str) -> dict[str, Any]:
    """ExampleGen's summary of the data ({} when absent)."""
    path = os.path.join(examples_uri, SUMMARY_FILENAME)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        summary: dict[str, Any] = json.load(f)
    return summary


def lineage(
    model: types.Artifact,
    model_dir: str,
    examples: types.Artifact,
    report: EvaluationReport,
    blessing_uri: str,
    infra: InfraReport | None,
    release: ReleaseOptions,
    pipeline: Mapping[str, str],
) -> dict[str, Any]:
    """The lineage of a pushed version: data, training, metrics, blessings, release settings.

    Args:
        model: the Trainer's model artifact.
        model_dir: the SavedModel being pushed (its assets.extra/ holds the training facts).
        examples: the data it was trained and evaluated on.
        report: the Evaluator's report.
        blessing_uri: the Evaluator's blessing.
        infra: the InfraValidator's report (None when the pipeline has no InfraValidator).
        release: approval and the model card's intended use and limitations.
        pipeline: {"name", "run_id"}.
    """
    ingest = ingest_summary(examples.uri)
    return {
        "model": {"uri": model.uri, "artifact_id": model.id},
        "pipeline": dict(pipeline),
        "data": {
            "examples_uri": examples.uri,
            "examples_artifact_id": examples.id,
            "span": int(examples.span) if examples.has_property("span") else 0,
            "spans": list(ingest.get("spans", [])),
            "source": ingest.get("input_base", ""),
            "num_examples": ingest.get("num_examples"),
            "num_rejected": ingest.get("num_rejected"),
        },
        "data_facts": facts.data_facts(examples.uri),
        "training": facts.training_facts(model_dir),
        "metrics": report.metrics,
        "evaluation": {
            "slices": report.slices,
            "baseline_slices": report.baseline_slices,
            "slice_floors": report.slice_floors,
            "simpler_reference": {
                "kind": report.simpler_reference,
                "metrics": report.reference_metrics,
                "margin": report.margin,
                "min_margin": report.min_margin,
            },
        },
        "baseline": {
            "version": report.baseline_version,
            "path": report.baseline_path,
            "metrics": report.baseline_metrics,
        },
        "thresholds": {"min_map_50": report.min_map_50, "max_map_50_drop": report.max_map_50_drop},
        "blessing_uri": blessing_uri,
        "infra_validation": infra.to_dict() if infra is not None else {},
        "release": {"intended_use": release.intended_use, "limitations": release.limitations},
        "approval": {
            "required": release.approval == "required",
            "state": "pending" if release.approval == "required" else "not required",
        },
    }


TFLITE_DIR = "assets.extra/tflite"


def tflite_files(tflite_artifacts: list[types.Artifact]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The shipped TFLite models and their report as files for the version, and their lineage entry.

    The files go to `assets.extra/tflite/`: TF Serving reads nothing in
    assets.extra/ but its warm-up file, so the models travel with the version
    without changing what it serves. Both are empty without a TFLite step.
    """
    if not tflite_artifacts:
        return {}, {}
    from detx.components.tflite.report import REPORT_FILE, TFLiteReport

    folder = tflite_artifacts[0].uri
    report = TFLiteReport.read(folder)
    files: dict[str, bytes] = {}
    models: dict[str, Any] = {}
    for entry in report.models:
        if entry.shipped:
            with tf.io.gfile.GFile(os.path.join(folder, entry.file), "rb") as f:
                files[os.path.join(TFLITE_DIR, os.path.basename(entry.file))] = f.read()
        models[entry.kind] = {
            "path": os.path.join(TFLITE_DIR, os.path.basename(entry.file)) if entry.shipped else "",
            "map_50": entry.map_50,
            "size_bytes": entry.size_bytes,
            "shipped": entry.shipped,
            "reason": entry.reason,
        }
    with tf.io.gfile.GFile(os.path.join(folder, REPORT_FILE), "rb") as f:
        files[os.path.join(TFLITE_DIR, REPORT_FILE)] = f.read()
    return files, {"models": models, "saved_model_map_50": report.saved_model.get("map_50")}


def card_files(store: ModelStore, baseline_version: int | None) -> LineageFiles:
    """Makes the model card from a version's final lineage, with the production it was compared with."""
    production = store.lineage(baseline_version) if baseline_version is not None else None

    def make(record: dict[str, Any]) -> Mapping[str, bytes]:
        return render.render(record, production or None)

    return make


def release_options(exec_properties: Mapping[str, Any]) -> ReleaseOptions:
    """The Pusher's release settings: `approval` (a run parameter) and the card texts (`release` JSON)."""
    texts = json.loads(exec_properties.get(RELEASE) or "{}")
    return ReleaseOptions(**{**texts, "approval": exec_properties.get(APPROVAL) or "none"})


def release_properties(options: ReleaseOptions) -> dict[str, str]:
    """The inverse of `release_options` (without `approval`, which has its own exec property)."""
    values = dataclasses.asdict(options)
    values.pop("approval")
    return {RELEASE: json.dumps(values, sort_keys=True)}
