"""DetectionBulkInferrer: the executor called as TFX calls it, with real artifacts and a real push."""

from __future__ import annotations

import json
import os
import shutil

from tfx.dsl.components.base import base_beam_executor
from tfx.types import channel_utils, standard_artifacts

from detx.components.batch_inference import executor, outputs
from detx.components.batch_inference.component import DetectionBulkInferrer
from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.model_store import ModelStore
from detx.components.pusher.executor import PUSHED, PUSHED_DESTINATION, PUSHED_VERSION


def _inputs(tmp_path, pushed_version: int | None, span: int) -> tuple[dict, dict]:
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    pushed.set_int_custom_property(PUSHED, int(pushed_version is not None))
    pushed.set_string_custom_property(PUSHED_DESTINATION, str(tmp_path / "models"))
    if pushed_version is not None:
        pushed.set_string_custom_property(PUSHED_VERSION, str(pushed_version))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.span = span
    result = standard_artifacts.InferenceResult()
    result.uri = str(tmp_path / "result")
    return {"pushed_model": [pushed], "examples": [examples]}, {"inference_result": [result]}


def test_the_pushed_version_scores_the_newest_span(tiny_model: str, image_root: str, tmp_path) -> None:
    version = ModelStore(str(tmp_path / "models")).push(tiny_model, {}).version
    data = tmp_path / "data"
    shutil.copytree(os.path.join(image_root, "a"), data / "span-1" / "images")
    shutil.copytree(os.path.join(image_root, "b"), data / "span-2" / "images")
    inputs, outputs_ = _inputs(tmp_path, version, span=2)
    options = BulkInferenceOptions(batch_size=4, shard_size=4)
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=["--runner=FnApiRunner"], tmp_dir=str(tmp_path / "tmp")
    )
    executor.Executor(context).Do(inputs, outputs_, {executor.DATA_PATH: str(data), **options.exec_properties()})
    result = outputs_["inference_result"][0]
    with open(os.path.join(result.uri, outputs.SUMMARY)) as f:
        summary = json.load(f)
    span_2 = sorted(os.listdir(data / "span-2" / "images" / "c"))
    assert (summary["model_version"], summary["scored"], summary["skipped"]) == (1, len(span_2), 0)
    assert summary["input_root"] == str(data / "span-2")
    assert result.get_int_custom_property("scored") == len(span_2)
    assert result.get_int_custom_property("model_version") == 1


def test_nothing_pushed_scores_nothing_and_says_why(tmp_path) -> None:
    inputs, outputs_ = _inputs(tmp_path, None, span=1)
    executor.Executor().Do(inputs, outputs_, {executor.DATA_PATH: str(tmp_path / "data")})
    with open(os.path.join(outputs_["inference_result"][0].uri, outputs.SUMMARY)) as f:
        assert json.load(f) == {"scored": 0, "reason": "the Pusher pushed no model in this run"}


def test_the_component_carries_the_options_as_exec_properties() -> None:
    component = DetectionBulkInferrer(
        pushed_model=channel_utils.as_channel([standard_artifacts.PushedModel()]),
        examples=channel_utils.as_channel([standard_artifacts.Examples()]),
        data_path="/data",
        options=BulkInferenceOptions(min_score=0.2, batch_size=8),
    )
    assert component.exec_properties == {
        "data_path": "/data",
        "min_score": 0.2,
        "batch_size": 8,
        "shard_size": 256,
        "max_pixels": 40_000_000,
    }
    assert component.outputs["inference_result"].type_name == "InferenceResult"
    options = BulkInferenceOptions.from_exec_properties(component.exec_properties)
    assert options == BulkInferenceOptions(min_score=0.2, batch_size=8)
