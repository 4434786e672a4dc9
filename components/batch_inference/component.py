"""DetectionBulkInferrer: the freshly pushed model scores the newest span's images (BulkInferrer's place in the DAG).

Its output is TFX's standard `InferenceResult` artifact type, the type of TFX's
own BulkInferrer, so the step sits where a TFX user expects it and needs no
custom type (a custom one must also be answered by detx/__init__.py for KFP's
container entrypoint). The folder holds detx's results, not BulkInferrer's
PredictionLog TFRecords: `predictions-*.jsonl` (records.ImagePrediction),
`skipped.jsonl`, `coco_results.json`, `coco_images.json` and `summary.json`,
exactly what `detx infer` writes.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.batch_inference import executor
from detx.components.batch_inference.options import BulkInferenceOptions


class DetectionBulkInferrerSpec(ComponentSpec):
    """Inputs, outputs and parameters of DetectionBulkInferrer."""

    PARAMETERS = {  # noqa: RUF012
        executor.DATA_PATH: ExecutionParameter(type=str),
        "min_score": ExecutionParameter(type=float),
        "batch_size": ExecutionParameter(type=int),
        "shard_size": ExecutionParameter(type=int),
        "max_pixels": ExecutionParameter(type=int),
    }
    INPUTS = {  # noqa: RUF012
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {"inference_result": ChannelParameter(type=standard_artifacts.InferenceResult)}  # noqa: RUF012


class DetectionBulkInferrer(base_beam_component.BaseBeamComponent):
    """Scores the images of ExampleGen's span with the version the Pusher just pushed.

    When the Pusher pushed nothing (the model was not blessed, or was already
    served), the step scores nothing and its summary says why. Beam runs with
    the pipeline's `beam_pipeline_args`, like the other Beam steps.
    """

    SPEC_CLASS = DetectionBulkInferrerSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        pushed_model: types.BaseChannel,
        examples: types.BaseChannel,
        data_path: str | types.RuntimeParameter,
        options: BulkInferenceOptions | None = None,
    ) -> None:
        """Builds the component.

        Args:
            pushed_model: the Pusher's `pushed_model`.
            examples: ExampleGen's examples (their span says which images to score).
            data_path: ExampleGen's input: a dataset folder or a span root.
            options: min score, batch size, shard size, pixel limit.
        """
        super().__init__(
            spec=DetectionBulkInferrerSpec(
                pushed_model=pushed_model,
                examples=examples,
                **{executor.DATA_PATH: data_path},
                **(options or BulkInferenceOptions()).exec_properties(),
                inference_result=types.Channel(type=standard_artifacts.InferenceResult),
            )
        )
