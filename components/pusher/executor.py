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
from detx.components.infra_validator.executor import eval_examples
from detx.components.infra_validator.options import InfraValidatorOptions
from detx.components.infra_validator.report import HAS_MODEL_KEY, InfraReport
from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore, ModelStoreError
from detx.components.pusher import finite, lineage
from detx.components.release import approval
from detx.components.release.options import ReleaseOptions
from detx.components.release.traffic import TrafficSplit, read_traffic, write_traffic

PROGRESS = logging.getLogger("detx.progress")

PUSH_DESTINATION = "push_destination"
PUSH_REPORT_FILENAME = "detx_push.json"
_TRAIN_SPLIT = "train"
# The custom properties TFX's own Pusher sets, so tools that read them work.
PUSHED = "pushed"
PUSHED_VERSION = "pushed_version"
PUSHED_DESTINATION = "pushed_destination"


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

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Pushes the model if blessed (and infra-blessed, when an InfraValidator ran).

        Args:
            input_dict: `model`, `model_blessing` (the Evaluator's), `examples` (for the lineage, and
                the eval sample of the numeric check: a model with NaN or Inf in its weights or in
                its answers is not pushed, see finite.py),
                optionally `infra_blessing` (the InfraValidator's: its `stamped_model/`, the model
                with TF Serving's warm-up file, is what gets pushed), `statistics`
                (StatisticsGen's, pushed with the model) and `tflite_models` (the TFLite step's
                shipped models, pushed into `assets.extra/tflite/`).
            output_dict: `pushed_model`: a record of the push (TFX's PushedModel).
            exec_properties: `push_destination`, `approval` ("required": push as a pending
                candidate), `release` (the model card's texts, JSON).

        Raises:
            ModelStoreError: the blessing is for another model, or the push failed.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        infra_artifacts = input_dict.get("infra_blessing") or []
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        destination = exec_properties[PUSH_DESTINATION]
        release = lineage.release_options(exec_properties)
        record: dict[str, Any] = {"destination": destination, "pushed": False}

        blessed_model = blessing.get_string_custom_property(tfx_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY)
        if blessed_model and blessed_model != model.uri:
            raise ModelStoreError(
                f"the blessing at {blessing.uri} is for {blessed_model}, not {model.uri}; not pushing"
            )
        report = EvaluationReport.read(blessing.uri)
        infra = InfraReport.read(infra_artifacts[0].uri) if infra_artifacts else None
        store = ModelStore(destination)
        serving = store.serving_version()
        record["served_before"] = serving
        known = {v: store.lineage_at(store.pending_path(v)) for v in store.pending_versions()}
        if serving is not None:
            known[serving] = store.lineage(serving)
        already = [v for v, found in known.items() if found.get("model", {}).get("uri") == model.uri]
        if not report.blessed:
            record["reason"] = report.verdict()
        elif infra is not None and not infra.blessed:
            record["reason"] = infra.verdict()
        elif already:
            where = "served" if already[0] == serving else "waiting for approval"
            record.update(reason=f"this model is already {where} as version {already[0]}", version=already[0])
        else:
            source = _model_to_push(model, infra_artifacts)
            numeric = finite.check(source, _eval_sample(examples))
            record["finite"] = numeric.to_dict()
            if not numeric.finite:
                record["reason"] = numeric.refusal()
            else:
                PROGRESS.info("%s", numeric.summary())
                pipeline = self._pipeline()
                record_lineage = lineage.lineage(
                    model, source, examples, report, blessing.uri, infra, release, pipeline
                )
                tflite, record_lineage["tflite"] = lineage.tflite_files(input_dict.get("tflite_models") or [])
                extra = {**_train_statistics(input_dict.get("statistics") or []), **tflite}
                record.update(_push(store, source, record_lineage, release, report.baseline_version, extra))
        if not record["pushed"]:
            PROGRESS.info("not pushing: %s", record["reason"])
        pushed.set_int_custom_property(PUSHED, int(record["pushed"]))
        pushed.set_string_custom_property(PUSHED_DESTINATION, destination)
        if record.get("version") is not None:
            pushed.set_string_custom_property(PUSHED_VERSION, str(record["version"]))
        tf.io.gfile.makedirs(pushed.uri)
        with tf.io.gfile.GFile(os.path.join(pushed.uri, PUSH_REPORT_FILENAME), "w") as f:
            f.write(json.dumps(record, indent=2, sort_keys=True))

    def _pipeline(self) -> dict[str, str]:
        context = self._context
        pipeline_info = context.pipeline_info if context is not None else None
        return {
            "name": pipeline_info.id if pipeline_info is not None else "",
            "run_id": (context.pipeline_run_id if context is not None else None) or "",
        }


def _eval_sample(examples: types.Artifact) -> list[bytes]:
    """The eval examples the InfraValidator picks: the split's first ones, as many as its default sends."""
    if "eval" not in artifact_utils.decode_split_names(examples.split_names or "[]"):
        return []
    return eval_examples(examples, InfraValidatorOptions().examples)


def _model_to_push(model: types.Artifact, infra_artifacts: list[types.Artifact]) -> str:
    """The InfraValidator's copy with the warm-up file if it made one (as TFX's Pusher does), else the model."""
    if infra_artifacts and infra_artifacts[0].get_int_custom_property(HAS_MODEL_KEY):
        return str(path_utils.stamped_model_path(infra_artifacts[0].uri))
    return str(path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model)))


def _push(
    store: ModelStore,
    source: str,
    record: dict[str, Any],
    release: ReleaseOptions,
    baseline_version: int | None,
    extra: dict[str, bytes],
) -> dict[str, Any]:
    """Publishes `source` as the next version, or as a pending candidate when approval is required.

    With `release.rollout: progressive` the version served now is pinned first
    (`detx_traffic.json`, stable alone), so the new version takes no traffic
    when it lands, nor when it is approved, until `detx rollout start` rolls
    it out. A pin already there (a rollout in progress, an earlier pin) stays.
    """
    pending = release.approval == "required"
    pinned = _pin_served(store) if release.rollout == "progressive" else None
    record["rollout"] = {
        "required": release.rollout == "progressive",
        "state": "waiting" if pinned is not None else "not required",
    }
    version = store.push(
        source, record, extra_files=extra, pending=pending, derived=lineage.card_files(store, baseline_version)
    )
    result: dict[str, Any] = {"pushed": True, "version": version.version, "path": version.path, "pending": pending}
    if pending:
        superseded = approval.supersede(store, version.version)
        result["superseded"] = superseded
        PROGRESS.info(
            "pushed version %d as a candidate waiting for approval (%s); "
            "serve it with: detx models approve %d --by NAME --reason TEXT",
            version.version,
            version.path,
            version.version,
        )
        if superseded:
            PROGRESS.info("retired older pending candidate(s) %s: superseded", ", ".join(map(str, superseded)))
    else:
        PROGRESS.info("pushed version %d to %s", version.version, version.path)
    if pinned is not None:
        result["pinned"] = pinned
        PROGRESS.info(
            "version %d keeps serving (release.rollout: progressive); roll version %d out with: "
            "detx rollout start %d%s",
            pinned,
            version.version,
            version.version,
            " (after detx models approve)" if pending else "",
        )
    return result


def _pin_served(store: ModelStore) -> int | None:
    """Pins the version served now as stable, unless a split is pinned already; returns the stable version.

    None when nothing is served yet: the first version has nothing to be
    compared with, so it is served at once.
    """
    split = read_traffic(store.root)
    if split is not None:
        return split.stable
    serving = store.serving_version()
    if serving is None:
        return None
    write_traffic(store.root, TrafficSplit(serving))
    return serving
