"""The Pusher's executor: publishes a blessed model as the next numbered version, with its lineage."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants as tfx_constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from detx.components.evaluator.report import EvaluationReport
from detx.components.example_gen.report import SUMMARY_FILENAME
from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore, ModelStoreError

PROGRESS = logging.getLogger("detx.progress")

PUSH_DESTINATION = "push_destination"
PUSH_REPORT_FILENAME = "detx_push.json"
_TRAIN_SPLIT = "train"
# The custom properties TFX's own Pusher sets, so tools that read them work.
PUSHED = "pushed"
PUSHED_VERSION = "pushed_version"
PUSHED_DESTINATION = "pushed_destination"


def _ingest_summary(examples_uri: str) -> dict[str, Any]:
    path = os.path.join(examples_uri, SUMMARY_FILENAME)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        summary: dict[str, Any] = json.load(f)
    return summary


def _train_statistics(statistics: list[types.Artifact]) -> dict[str, bytes]:
    """The train split's statistics file, to be pushed with the model (none without statistics)."""
    if not statistics:
        return {}
    split_uri = artifact_utils.get_split_uri(statistics, _TRAIN_SPLIT)
    path = os.path.join(split_uri, "FeatureStats.pb")
    if not tf.io.gfile.exists(path):
        raise ModelStoreError(f"no train statistics at {path}; StatisticsGen's output is incomplete, nothing pushed")
    with tf.io.gfile.GFile(path, "rb") as f:
        return {TRAIN_STATS_FILENAME: f.read()}


class Executor(base_executor.BaseExecutor):
    """Pushes only blessed models; records what it did in `detx_push.json` and the artifact's properties."""

    def _lineage(
        self, model: types.Artifact, examples: types.Artifact, report: EvaluationReport, blessing_uri: str
    ) -> dict[str, Any]:
        ingest = _ingest_summary(examples.uri)
        context = self._context
        pipeline_info = context.pipeline_info if context is not None else None
        return {
            "model": {"uri": model.uri, "artifact_id": model.id},
            "pipeline": {
                "name": pipeline_info.id if pipeline_info is not None else "",
                "run_id": (context.pipeline_run_id if context is not None else None) or "",
            },
            "data": {
                "examples_uri": examples.uri,
                "examples_artifact_id": examples.id,
                "span": int(examples.span) if examples.has_property("span") else 0,
                "spans": list(ingest.get("spans", [])),
                "source": ingest.get("input_base", ""),
                "num_examples": ingest.get("num_examples"),
                "num_rejected": ingest.get("num_rejected"),
            },
            "metrics": report.metrics,
            "baseline": {
                "version": report.baseline_version,
                "path": report.baseline_path,
                "metrics": report.baseline_metrics,
            },
            "thresholds": {"min_map_50": report.min_map_50, "max_map_50_drop": report.max_map_50_drop},
            "blessing_uri": blessing_uri,
        }

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Pushes the model if blessed.

        Args:
            input_dict: `model`, `model_blessing` (the Evaluator's), `examples` (for the lineage),
                optionally `statistics` (StatisticsGen's, pushed with the model).
            output_dict: `pushed_model`: a record of the push (TFX's PushedModel).
            exec_properties: `push_destination`.

        Raises:
            ModelStoreError: the blessing is for another model, or the push failed.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        destination = exec_properties[PUSH_DESTINATION]
        record: dict[str, Any] = {"destination": destination, "pushed": False}

        blessed_model = blessing.get_string_custom_property(tfx_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY)
        if blessed_model and blessed_model != model.uri:
            raise ModelStoreError(
                f"the blessing at {blessing.uri} is for {blessed_model}, not {model.uri}; not pushing"
            )
        report = EvaluationReport.read(blessing.uri)
        store = ModelStore(destination)
        serving = store.serving_version()
        record["served_before"] = serving
        if not report.blessed:
            record["reason"] = report.verdict()
            PROGRESS.info("not pushing: %s", report.verdict())
        elif serving is not None and store.lineage(serving).get("model", {}).get("uri") == model.uri:
            record.update(reason=f"this model is already served as version {serving}", version=serving)
            PROGRESS.info("not pushing: this model is already served as version %d", serving)
        else:
            source = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
            extra = _train_statistics(input_dict.get("statistics") or [])
            version = store.push(source, self._lineage(model, examples, report, blessing.uri), extra_files=extra)
            record.update(pushed=True, version=version.version, path=version.path)
            PROGRESS.info("pushed version %d to %s", version.version, version.path)
        pushed.set_int_custom_property(PUSHED, int(record["pushed"]))
        pushed.set_string_custom_property(PUSHED_DESTINATION, destination)
        if record.get("version") is not None:
            pushed.set_string_custom_property(PUSHED_VERSION, str(record["version"]))
        tf.io.gfile.makedirs(pushed.uri)
        with tf.io.gfile.GFile(os.path.join(pushed.uri, PUSH_REPORT_FILENAME), "w") as f:
            f.write(json.dumps(record, indent=2, sort_keys=True))
