"""DetectionTFLiteConverter: the Trainer's SavedModel as float32, float16 and int8 TFLite models, checked."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.tflite import executor
from detx.components.tflite.options import TFLiteOptions


class TFLiteModels(Artifact):
    """A folder of TFLite models with `tflite_report.json` (components/tflite/report.py).

    Shipped models are the folder's top-level `*.tflite` files; a model the gate
    stopped lies under `rejected/`.
    """

    # KFP's container entrypoint imports custom artifact classes by type name (`detx.<Class>`):
    # detx/__init__.py must answer this name, as it does DataGateResult.
    TYPE_NAME = "detx.TFLiteModels"


class DetectionTFLiteConverterSpec(ComponentSpec):
    """Inputs, outputs and parameters of DetectionTFLiteConverter."""

    PARAMETERS = {  # noqa: RUF012
        "calibration_examples": ExecutionParameter(type=int),
        "max_int8_map50_drop": ExecutionParameter(type=float),
        "use_regular_nms": ExecutionParameter(type=int),
        "num_threads": ExecutionParameter(type=int),
        "seed": ExecutionParameter(type=int),
        executor.MODEL_NAME: ExecutionParameter(type=str),
    }
    INPUTS = {  # noqa: RUF012
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {"tflite_models": ChannelParameter(type=TFLiteModels)}  # noqa: RUF012


class DetectionTFLiteConverter(base_component.BaseComponent):
    """Converts the exported detector to TFLite and keeps an int8 model only if it keeps its accuracy.

    Three models end in TFLite's detection post-processing op and carry TFLite
    Metadata (labels, input normalization), as TFLite's Task Library and the
    Coral and MediaPipe samples expect. int8 is calibrated on a seeded sample of
    the train split. Each model's COCO mAP on the eval split is measured with
    TFLite's interpreter beside the SavedModel's (same images, same metric
    code); int8 ships only within `max_int8_map50_drop` of the SavedModel's
    mAP@0.5, the float models always. The output folder holds the shipped
    models, the stopped one under `rejected/`, and `tflite_report.json`.
    """

    SPEC_CLASS = DetectionTFLiteConverterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        options: TFLiteOptions | None = None,
        max_int8_map50_drop: float | types.RuntimeParameter | None = None,
        model_name: str = "detx",
    ) -> None:
        """Builds the component.

        Args:
            model: the Trainer's model.
            examples: ExampleGen's examples (train split: calibration; eval split: mAP).
            options: calibration size, gate threshold, NMS flavour, interpreter threads, seed.
            max_int8_map50_drop: replaces `options.max_int8_map50_drop` (a KFP runtime parameter, say).
            model_name: the models' name in their metadata (the pipeline's name).
        """
        properties = (options or TFLiteOptions()).exec_properties()
        if max_int8_map50_drop is not None:
            properties["max_int8_map50_drop"] = max_int8_map50_drop
        super().__init__(
            spec=DetectionTFLiteConverterSpec(
                model=model,
                examples=examples,
                **properties,
                **{executor.MODEL_NAME: model_name},
                tflite_models=types.Channel(type=TFLiteModels),
            )
        )
