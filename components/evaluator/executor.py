"""The Evaluator's executor: TFMA over the eval split, candidate beside the model in production, then the verdict."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import apache_beam as beam
import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components.evaluator import constants as tfx_constants
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, json_utils, path_utils
from tfx_bsl.public import tfxio

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.evaluation import tfma_coco
from detx.components.evaluator import baseline as baseline_lib
from detx.components.evaluator import simpler_reference, slice_floors
from detx.components.evaluator.eval_config import (
    BASELINE,
    BLESSING_METRIC,
    REFERENCE,
    SIGNATURE,
    candidate_name,
    eval_config,
)
from detx.components.evaluator.options import EvaluatorOptions
from detx.components.evaluator.report import EvaluationReport

PROGRESS = logging.getLogger("detx.progress")

# Exec property names (component.py declares them; the options' own are in options.py).
PUSH_DESTINATION = "push_destination"
BASELINE_SETTING = "baseline"
EXAMPLE_SPLITS = "example_splits"


def _number(value: Any) -> float:
    """A TFMA metric value as a float (TFMA writes NaN as the string "NaN")."""
    if isinstance(value, dict):
        value = value.get("doubleValue", float("nan"))
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _slice_name(slice_key: tuple[Any, ...]) -> str:
    return ",".join(f"{k}={v}" for k, v in slice_key) or "all"


def read_metrics(output_uri: str, model_name: str) -> dict[str, dict[str, float]]:
    """Per slice name ("all" for the whole split), the metrics TFMA wrote for `model_name`."""
    result = tfma.load_eval_result(output_uri, model_name=model_name or None)
    per_slice: dict[str, dict[str, float]] = {}
    for slice_key, metrics in result.slicing_metrics:
        values = metrics.get("", {}).get("", {})
        per_slice[_slice_name(slice_key)] = {name: _number(v) for name, v in values.items()}
    return per_slice


def _reasons(
    validation: Any,
    metrics: dict[str, float],
    base: dict[str, float],
    options: EvaluatorOptions,
    baseline: baseline_lib.Baseline | None,
) -> list[str]:
    """Sentences for the failed thresholds on mAP@0.5 of TFMA's validation result (the floors have their own)."""
    reasons = []
    value = metrics.get(BLESSING_METRIC, float("nan"))
    for failure in _failures(validation):
        if failure.metric_key.name != BLESSING_METRIC:
            continue
        if failure.metric_key.is_diff and baseline is not None:
            base_value = base.get(BLESSING_METRIC, math.nan)
            what = f"production version {baseline.version}" if baseline.version else f"the baseline {baseline.path}"
            reasons.append(
                f"mAP@0.5 {value:.3f} is {base_value - value:.3f} below {what} ({base_value:.3f}); "
                f"the allowed drop is {options.max_map_50_drop:.3f}"
            )
        elif not failure.metric_key.is_diff:
            hint = " (the eval split has no boxes)" if metrics.get(tfma_coco.NUM_GT_BOXES) == 0 else ""
            reasons.append(f"mAP@0.5 {value:.3f} is below the floor {options.min_map_50:.3f}{hint}")
    return reasons


def _failures(validation: Any) -> list[Any]:
    return [failure for per_slice in validation.metric_validations_per_slice for failure in per_slice.failures]


def _failed_metrics(validation: Any) -> set[str]:
    """Names of the candidate's metrics that failed a threshold that is not a change threshold."""
    return {f.metric_key.name for f in _failures(validation) if not f.metric_key.is_diff}


def in_memory_worker(beam_pipeline_args: list[str]) -> list[str]:
    """The same arguments with Beam's local engine running in memory.

    Beam's FnApiRunner with workers behind its gRPC data plane (the
    multi-threading and multi-processing modes) intermittently fails on TFMA's
    grouped data ("Invalid PaneInfoEncoding" while decoding a worker's output):
    seen with two workers in bench/evaluator_vs_loop.py and with one worker in
    the second pipeline run of a CI test process. The in-memory mode hands
    bundles over without that data plane. It loses little here: inference
    dominates and TensorFlow already runs it on every core. Other runners
    (Dataflow, Flink) ignore these flags.
    """
    dropped = ("--direct_num_workers", "--direct_running_mode")
    kept = [a for a in beam_pipeline_args if not a.startswith(dropped)]
    return [*kept, "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _per_slice(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """mAP@0.5 and example count of every slice but the whole split."""
    return {
        name: {k: v for k, v in values.items() if k in (BLESSING_METRIC, "example_count")}
        for name, values in metrics.items()
        if name != "all"
    }


class Executor(base_beam_executor.BaseBeamExecutor):
    """Evaluates, compares with the model in production, and blesses or not."""

    def _make_beam_pipeline(self) -> beam.Pipeline:
        args: list[str] = list(getattr(self, "_beam_pipeline_args", None) or [])
        self._beam_pipeline_args = in_memory_worker(args)
        return super()._make_beam_pipeline()

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Runs TFMA and writes the evaluation, the blessing and `detx_evaluation.json`.

        Args:
            input_dict: `examples` (ExampleGen's) and `model` (the Trainer's).
            output_dict: `evaluation` (TFMA's results) and `blessing`.
            exec_properties: push destination, baseline setting, the options
                (`EvaluatorOptions.exec_properties`: the thresholds, the rest as JSON), splits.

        Raises:
            BaselineError: the model in production cannot be evaluated the same way.
            ValueError: a class floor names a class the label map lacks, or the simpler
                reference has no train split (or no box in it) to be fitted on.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        options = EvaluatorOptions.from_exec_properties(exec_properties)
        examples = input_dict["examples"]
        model = artifact_utils.get_single_instance(input_dict["model"])
        output_uri = artifact_utils.get_single_uri(output_dict["evaluation"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        splits = json_utils.loads(exec_properties.get(EXAMPLE_SPLITS) or "null") or ["eval"]
        label_map = LabelMap.read(os.path.join(artifact_utils.get_single_uri(examples), LABEL_MAP_FILENAME))
        class_ids = [label for label, _ in label_map.items()]
        class_names = list(label_map.names)

        push_destination = exec_properties.get(PUSH_DESTINATION) or ""
        baseline = baseline_lib.resolve(exec_properties.get(BASELINE_SETTING) or "", push_destination)
        if baseline is not None and SIGNATURE not in baseline_lib.signature_names(baseline.path):
            raise baseline_lib.BaselineError(
                f"the model in production ({baseline.path}) has no {SIGNATURE!r} signature, so it cannot be "
                f"evaluated on tf.Examples like the candidate. Push a detx-exported model first, or set the "
                f"Evaluator's baseline to 'none' to bless on the value threshold only."
            )
        floors = slice_floors.floors(options, class_names)
        reference = simpler_reference.build(options, examples, output_uri)
        config = eval_config(
            options,
            class_ids,
            class_names,
            has_baseline=baseline is not None,
            floors=floors,
            has_reference=reference is not None,
        )
        candidate_path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        candidate = candidate_name(baseline is not None, reference is not None)
        models = [tfma.default_eval_shared_model(candidate_path, model_name=candidate, eval_config=config)]
        if baseline is not None:
            models.append(tfma.default_eval_shared_model(baseline.path, model_name=BASELINE, eval_config=config))
        if reference is not None:
            models.append(tfma.default_eval_shared_model(reference.path, model_name=REFERENCE, eval_config=config))
        if baseline is None:
            against = "no model in production yet"
        elif baseline.version is None:
            against = f"the baseline model {baseline.path}"
        else:
            against = f"production version {baseline.version}"
        if reference is not None:
            against += f", and {reference.description}"
        PROGRESS.info("evaluating on split(s) %s against %s", ", ".join(splits), against)

        with self._make_beam_pipeline() as pipeline:
            reads = []
            for split in splits:
                for index, uri in enumerate(artifact_utils.get_split_uris(examples, split)):
                    source = tfxio.TFExampleRecord(
                        io_utils.all_files_pattern(uri), raw_record_column_name=tfma.ARROW_INPUT_COLUMN
                    )
                    reads.append(pipeline | f"Read[{split}][{index}]" >> source.BeamSource())
            _ = (
                reads
                | "Flatten" >> beam.Flatten()
                | "Evaluate"
                >> tfma.ExtractEvaluateAndWriteResults(
                    eval_shared_model=models if len(models) > 1 else models[0],
                    eval_config=config,
                    output_path=output_uri,
                )
            )

        candidate_slices = read_metrics(output_uri, candidate)
        base_slices = read_metrics(output_uri, BASELINE) if baseline is not None else {}
        base = base_slices.get("all", {})
        overall = candidate_slices.get("all", {})
        validation = tfma.load_validation_result(output_uri)
        reasons = _reasons(validation, overall, base, options, baseline)
        floor_results, floor_reasons = slice_floors.check(floors, overall, _failed_metrics(validation))
        reasons += floor_reasons
        judged = {BLESSING_METRIC, *(f.metric for f in floors)}
        # A failed validation that none of the sentences explains (e.g. a missing slice) still stops the push.
        if not validation.validation_ok and not reasons and (not _failures(validation) or validation.missing_slices):
            reasons.append(f"TFMA's validation failed: {validation}".strip())
        reasons += [
            f"TFMA's threshold on {f.metric_key.name} failed: {f.message or f.metric_threshold}".strip()
            for f in _failures(validation)
            if f.metric_key.name not in judged
        ]
        reference_metrics: dict[str, float] = {}
        margin = None
        if reference is not None:
            reference_metrics = read_metrics(output_uri, REFERENCE).get("all", {})
            margin = simpler_reference.margin(overall, reference_metrics, BLESSING_METRIC)
            reference_value = reference_metrics.get(BLESSING_METRIC, math.nan)
            below = simpler_reference.margin_reason(margin, options.min_margin, reference_value)
            reasons += [below] if below else []
        report = EvaluationReport(
            blessed=not reasons,
            reasons=reasons,
            metrics=overall,
            baseline_version=baseline.version if baseline else None,
            baseline_path=baseline.path if baseline else None,
            baseline_metrics=base,
            min_map_50=options.min_map_50,
            max_map_50_drop=options.max_map_50_drop,
            slices=_per_slice(candidate_slices),
            baseline_slices=_per_slice(base_slices),
            slice_floors=floor_results,
            simpler_reference=reference.kind if reference else "none",
            reference_metrics=reference_metrics,
            margin=margin,
            min_margin=options.min_margin if reference else None,
        )
        report.write(blessing.uri)
        # The same files and properties as TFX's Evaluator, so TFX's Pusher and tools read it too.
        marker = tfx_constants.BLESSED_FILE_NAME if report.blessed else tfx_constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, marker), "")
        blessing.set_int_custom_property(
            tfx_constants.ARTIFACT_PROPERTY_BLESSED_KEY,
            tfx_constants.BLESSED_VALUE if report.blessed else tfx_constants.NOT_BLESSED_VALUE,
        )
        blessing.set_string_custom_property(tfx_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(tfx_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline is not None:
            blessing.set_string_custom_property(tfx_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.path)
            if baseline.version is not None:
                blessing.set_int_custom_property("baseline_version", baseline.version)
        blessing.set_string_custom_property("verdict", report.verdict())
        PROGRESS.info("%s", report.verdict())
