"""The TFMA EvalConfig of the Evaluator: COCO metrics on the tf.Example signature, slices, both thresholds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import tensorflow_model_analysis as tfma

from detx.components.evaluation import tfma_coco
from detx.components.evaluator.options import EvaluatorOptions

CANDIDATE = "candidate"
BASELINE = "baseline"
# The exported signature that takes serialized tf.Examples (components/trainer/export.py).
SIGNATURE = "tf_example"
# The metric both thresholds look at.
BLESSING_METRIC = tfma_coco.MAP_50


def eval_config(
    options: EvaluatorOptions, class_ids: Sequence[int], class_names: Sequence[str], has_baseline: bool
) -> tfma.EvalConfig:
    """The TFMA EvalConfig: COCO metrics on the `tf_example` signature, sliced, with both thresholds.

    Args:
        options: thresholds and slices.
        class_ids: the label map's ids.
        class_names: their names.
        has_baseline: add the model in production as TFMA's baseline model.
    """
    # TFMA names a lone model "" and two models "candidate"/"baseline".
    model_specs = [tfma.ModelSpec(name=CANDIDATE if has_baseline else "", signature_name=SIGNATURE)]
    if has_baseline:
        model_specs.append(tfma.ModelSpec(name=BASELINE, signature_name=SIGNATURE, is_baseline=True))
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": options.min_map_50}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -options.max_map_50_drop}
        ),
    )
    whole_split = tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)
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
        # The thresholds judge the whole split only: slices (some without any box) inform, they do not veto.
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=metrics,
                per_slice_thresholds={BLESSING_METRIC: tfma.PerSliceMetricThresholds(thresholds=[whole_split])},
            )
        ],
    )
    # Fills in model names per metrics spec; with no baseline, change thresholds are
    # dropped ("rubber stamp"), as TFX's Evaluator does on a first run.
    return tfma.utils.update_eval_config_with_defaults(config, has_baseline=has_baseline, rubber_stamp=True)
