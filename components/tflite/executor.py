"""DetectionTFLiteConverter's executor: adapts TFX's artifacts and calls `build.build`."""

from __future__ import annotations

import logging
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from detx.components.tflite.build import build
from detx.components.tflite.options import TFLiteOptions

PROGRESS = logging.getLogger("detx.progress")
MODEL_NAME = "model_name"
# Custom properties of the output artifact (ML Metadata), for lineage and run summaries.
SHIPPED_PROPERTY = "shipped"


class Executor(base_executor.BaseExecutor):
    """Converts, evaluates, gates and writes the TFLite models."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes the TFLite models and `tflite_report.json` into the `tflite_models` artifact.

        Args:
            input_dict: `model` (the Trainer's) and `examples` (ExampleGen's: train and eval splits).
            output_dict: `tflite_models`.
            exec_properties: `TFLiteOptions.exec_properties()` and `model_name`.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        options = TFLiteOptions.from_exec_properties(exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        saved_model = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        examples = input_dict["examples"]
        train = [io_utils.all_files_pattern(uri) for uri in artifact_utils.get_split_uris(examples, "train")]
        evaluation = [io_utils.all_files_pattern(uri) for uri in artifact_utils.get_split_uris(examples, "eval")]
        output = artifact_utils.get_single_instance(output_dict["tflite_models"])
        report = build(
            saved_model,
            output.uri,
            representative=train,
            eval_data=evaluation,
            options=options,
            name=str(exec_properties.get(MODEL_NAME) or "detx"),
            log=PROGRESS.info,
        )
        output.set_string_custom_property(SHIPPED_PROPERTY, ",".join(m.kind for m in report.shipped()))
        for entry in report.models:
            if entry.map_50 is not None:
                output.set_float_custom_property(f"{entry.kind}_map_50", entry.map_50)
