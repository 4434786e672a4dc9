"""DetectionEvaluator: COCO metrics with TFMA, blessing against the model in production found without a Resolver."""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.evaluator import executor
from detx.components.evaluator.options import OPTIONS, RUN_SETTINGS, EvaluatorOptions


class DetectionEvaluatorSpec(ComponentSpec):
    """Inputs, outputs and parameters of DetectionEvaluator."""

    PARAMETERS = {  # noqa: RUF012
        executor.PUSH_DESTINATION: ExecutionParameter(type=str),
        executor.BASELINE_SETTING: ExecutionParameter(type=str),
        OPTIONS: ExecutionParameter(type=str),
        executor.EXAMPLE_SPLITS: ExecutionParameter(type=str, optional=True),
        # The thresholds (min_map_50, max_map_50_drop): plain numbers, so that a KFP run form can set them.
        **{name: ExecutionParameter(type=float) for name in RUN_SETTINGS},
    }
    INPUTS = {  # noqa: RUF012
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {  # noqa: RUF012
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class DetectionEvaluator(base_component.BaseComponent):
    """Evaluates the candidate on the eval split with TFMA and blesses it or not.

    The baseline is the model TF Serving serves from the push destination (its
    newest complete version), read from the destination when the component runs:
    no Resolver node, which open-source Kubeflow Pipelines cannot run. Outputs
    are TFX's ModelEvaluation (load it with `tfma.load_eval_result`) and
    ModelBlessing (with TFX's BLESSED/NOT_BLESSED files and `detx_evaluation.json`).
    """

    SPEC_CLASS = DetectionEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        push_destination: str | types.RuntimeParameter,
        baseline: str | types.RuntimeParameter = "auto",
        options: EvaluatorOptions | None = None,
        example_splits: list[str] | None = None,
        min_map_50: float | types.RuntimeParameter | None = None,
        max_map_50_drop: float | types.RuntimeParameter | None = None,
    ) -> None:
        """Builds the component.

        Args:
            examples: ExampleGen's output (with its label map).
            model: the Trainer's model.
            push_destination: where pushed versions live (the baseline is found there).
            baseline: "auto" (look it up when running), "none", or the version directory
                in production when the pipeline was built (see `baseline.resolve`).
            options: thresholds and slices.
            example_splits: splits to evaluate on (default: eval).
            min_map_50: replaces `options.min_map_50` (a KFP runtime parameter, say).
            max_map_50_drop: replaces `options.max_map_50_drop`.
        """
        properties = (options or EvaluatorOptions()).exec_properties()
        replaced = {"min_map_50": min_map_50, "max_map_50_drop": max_map_50_drop}
        properties.update({name: value for name, value in replaced.items() if value is not None})
        super().__init__(
            spec=DetectionEvaluatorSpec(
                examples=examples,
                model=model,
                push_destination=push_destination,
                baseline=baseline,
                example_splits=json.dumps(example_splits or ["eval"]),
                **properties,
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
