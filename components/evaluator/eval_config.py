"""The TFMA EvalConfig of the Evaluator: COCO metrics on the tf.Example signature, slices, both thresholds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import tensorflow_model_analysis as tfma

from detx.components.evaluation import tfma_coco
from detx.components.evaluator import slice_floors
from detx.components.evaluator.options import EvaluatorOptions

CANDIDATE = "candidate"
BASELINE = "baseline"
REFERENCE = "simpler_reference"  # the simpler model the candidate must beat (options.simpler_reference)
# The exported signature that takes serialized tf.Examples (components/trainer/export.py).
SIGNATURE = "tf_example"
# The metric both thresholds look at.
BLESSING_METRIC = tfma_coco.MAP_50


def candidate_name(has_baseline: bool, has_reference: bool) -> str:
    """TFMA names a lone model "" and each of several by its name."""
    return CANDIDATE if has_baseline or has_reference else ""


def eval_config(
    options: EvaluatorOptions,
    class_ids: Sequence[int],
    class_names: Sequence[str],
    has_baseline: bool,
    floors: Sequence[slice_floors.Floor] = (),
    has_reference: bool = False,
) -> tfma.EvalConfig:
    """The TFMA EvalConfig: COCO metrics on the `tf_example` signature, sliced, with the thresholds.

    Args:
        options: thresholds and slices.
        class_ids: the label map's ids.
        class_names: their names.
        has_baseline: add the model in production as TFMA's baseline model.
        floors: value thresholds on the whole split's per-class and per-size numbers.
        has_reference: add the simpler reference model, scored without thresholds.
    """
    candidate = candidate_name(has_baseline, has_reference)
    model_specs = [tfma.ModelSpec(name=candidate, signature_name=SIGNATURE)]
    if has_baseline:
        model_specs.append(tfma.ModelSpec(name=BASELINE, signature_name=SIGNATURE, is_baseline=True))
    if has_reference:
        model_specs.append(tfma.ModelSpec(name=REFERENCE, signature_name=SIGNATURE))
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": options.min_map_50}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -options.max_map_50_drop}
        ),
    )
    whole_split = tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)
    thresholds = {BLESSING_METRIC: tfma.PerSliceMetricThresholds(thresholds=[whole_split])}
    for floor in floors:
        value = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": floor.floor}))
        thresholds[floor.metric] = tfma.PerSliceMetricThresholds(
            thresholds=[tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=value)]
        )
    metrics: list[Any] = [
        tfma.MetricConfig(
            class_name=tfma_coco.COCODetectionMetrics.__name__,
            module=tfma_coco.__name__,
            config=json.dumps({"class_ids": list(class_ids), "class_names": list(class_names)}),
        ),
        tfma.MetricConfig(class_name="ExampleCount"),
    ]
    config = tfma.EvalConfig(
        model_specs=model_specs,
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=[f]) for f in options.slice_features)],
        # The thresholds judge the whole split only: feature slices (some without any box) inform, they do
        # not veto. The class and size floors are numbers of the whole split too (slice_floors.py).
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=metrics,
                per_slice_thresholds=thresholds,
                # Named beside a reference model, so that it (below) gets no thresholds.
                model_names=[candidate, *([BASELINE] if has_baseline else [])] if has_reference else [],
            ),
            *([tfma.MetricsSpec(metrics=metrics, model_names=[REFERENCE])] if has_reference else []),
        ],
    )
    # Fills in model names per metrics spec; with no baseline, change thresholds are
    # dropped ("rubber stamp"), as TFX's Evaluator does on a first run.
    return tfma.utils.update_eval_config_with_defaults(config, has_baseline=has_baseline, rubber_stamp=True)
