"""DetectionBulkInferrer's executor: the pushed model scores the newest span's images with `detx infer`'s job."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from detx.components.batch_inference import job, outputs
from detx.components.batch_inference.model import ModelRef
from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.beam_args import local_beam_args
from detx.components.data.spans import list_spans, span_dir
from detx.components.model_store import ModelStore
from detx.components.pusher.executor import PUSHED, PUSHED_DESTINATION, PUSHED_VERSION

DATA_PATH = "data_path"


def images_of(data_path: str, span: int) -> str:
    """The folder of the span ExampleGen read: `span-<n>/` of a span root, else the dataset folder itself."""
    return span_dir(data_path, span) if span > 0 and span in list_spans(data_path) else data_path


def pushed_model(pushed: types.Artifact) -> ModelRef | None:
    """The version the Pusher pushed (waiting for approval or served), or None when it pushed nothing."""
    if not pushed.get_int_custom_property(PUSHED):
        return None
    store = ModelStore(pushed.get_string_custom_property(PUSHED_DESTINATION))
    version = int(pushed.get_string_custom_property(PUSHED_VERSION))
    path = store.path(version) if version in store.complete_versions() else store.pending_path(version)
    return ModelRef(path, version)


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs the batch-inference job into the InferenceResult artifact, with the pipeline's Beam arguments."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Scores the images of the examples' span with the pushed model.

        Args:
            input_dict: `pushed_model` (the Pusher's record) and `examples` (ExampleGen's, for its span).
            output_dict: `inference_result`: the job's folder (outputs.py lists its files).
            exec_properties: `data_path` (ExampleGen's input: a dataset or a span root) and the
                options' fields (options.BulkInferenceOptions.exec_properties).
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(input_dict["pushed_model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        result = artifact_utils.get_single_instance(output_dict["inference_result"])
        options = BulkInferenceOptions.from_exec_properties(exec_properties)
        model = pushed_model(pushed)
        if model is None:
            # Nothing new to score: say so in the artifact rather than score the old model again.
            tf.io.gfile.makedirs(result.uri)
            note = {"scored": 0, "reason": "the Pusher pushed no model in this run"}
            outputs.write_atomic(os.path.join(result.uri, outputs.SUMMARY), [json.dumps(note) + "\n"])
            logging.info("DetectionBulkInferrer: %s", note["reason"])
            return
        root = images_of(str(exec_properties[DATA_PATH]), int(examples.span or 0))
        summary = job.run(
            root, result.uri, model, options, self._beam_pipeline_args or local_beam_args(), echo=logging.info
        )
        result.set_int_custom_property("scored", int(summary["scored"]))
        result.set_int_custom_property("skipped", int(summary["skipped"]))
        result.set_int_custom_property("model_version", int(model.version or 0))
