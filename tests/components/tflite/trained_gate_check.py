"""The int8 gate on a detector with real signal. NOT part of `make test` (its name does not start with `test_`).

A random-weight model scores about zero whatever its calibration, so only a
trained one shows the gate at work: here a small network (the tiny preset's
code at 64 px, a 32-channel FPN) trained for 100 steps on synthetic shapes,
about 30 s on 2 CPU cores, then the component's executor and `build`. The
module takes about 75 s in all, over the budget of `make test`; run it with

    .venv/bin/pytest tests/components/tflite/trained_gate_check.py
"""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.modeling import config as config_lib
from detx.components.tflite import build as build_lib
from detx.components.tflite import inputs
from detx.components.tflite.component import TFLiteModels
from detx.components.tflite.executor import Executor
from detx.components.tflite.interpreter import TFLiteDetector
from detx.components.tflite.options import TFLiteOptions
from detx.components.tflite.report import REPORT_FILE, TFLiteReport
from detx.components.trainer import data, export, train
from testing.data import write_examples
from testing.tflite import SMALL_CONFIG, small_preset_registered

MODEL = SMALL_CONFIG
SIZE = MODEL.image_size
TRAIN = dataclasses.replace(
    config_lib.preset("tiny")[1],
    train_steps=100,
    checkpoint_every=100,
    base_learning_rate=0.08,
    warmup_steps=30,
    augment=False,
)


@dataclasses.dataclass(frozen=True)
class Trained:
    examples: str  # ExampleGen's layout: Split-train/, Split-eval/, label_map.pbtxt
    artifact: str  # the Trainer's model artifact folder
    saved_model: str  # its Format-Serving/


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained64")
    examples = write_examples(
        str(root / "examples"), 200, seed=3, width=SIZE, height=SIZE, min_size=21, max_size=48, max_objects=2
    )
    pattern = os.path.join(examples, "Split-train", "*")
    dataset = lambda b: data.make_dataset(pattern, MODEL, TRAIN, batch_size=b)  # noqa: E731
    result = train.train(dataset, MODEL, TRAIN, 3, str(root / "run"), log=lambda _: None)
    artifact = str(root / "model")
    saved_model = os.path.join(artifact, "Format-Serving")
    export.export(result.network, MODEL, os.path.join(examples, LABEL_MAP_FILENAME), saved_model, batching=None)
    return Trained(examples, artifact, saved_model)


@pytest.fixture(scope="module")
def registered():
    """`test64` among detx's presets while this module runs."""
    with small_preset_registered():
        yield


def test_the_executor_ships_an_int8_model_calibrated_on_the_train_split(trained, registered, tmp_path):
    model = standard_artifacts.Model()
    model.uri = trained.artifact
    examples = standard_artifacts.Examples()
    examples.uri = trained.examples
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    output = TFLiteModels()
    output.uri = str(tmp_path / "tflite")
    os.makedirs(output.uri)
    properties = {**TFLiteOptions(calibration_examples=64).exec_properties(), "model_name": "shapes"}
    Executor().Do({"model": [model], "examples": [examples]}, {"tflite_models": [output]}, properties)

    report = TFLiteReport.read(output.uri)
    saved = report.saved_model
    assert saved["map_50"] > 0.15  # real signal (a random network: about 0)
    by_kind = {m.kind: m for m in report.models}
    assert by_kind["float32"].map_50 == pytest.approx(saved["map_50"], abs=0.005)
    int8 = by_kind["int8"]
    assert int8.shipped and int8.map_50_drop <= 0.02, int8.reason
    assert output.get_string_custom_property("shipped") == "float32,float16,int8"
    assert "detector_int8.tflite" in os.listdir(output.uri)


def test_int8_calibrated_on_blank_images_is_not_shipped(trained, registered, tmp_path):
    blank = tmp_path / "blank.npy"
    np.save(blank, np.zeros((16, SIZE, SIZE, 3), np.uint8))
    out = tmp_path / "out"
    report = build_lib.build(
        trained.saved_model, str(out), kinds=("int8",), representative=str(blank), eval_data=trained.examples
    )
    (int8,) = report.models
    assert not int8.shipped and int8.map_50_drop > 0.02
    assert int8.reason.startswith(f"int8 mAP@0.5 {int8.map_50:.3f} is {int8.map_50_drop:.3f} below the SavedModel's")
    assert "not shipped" in int8.reason
    assert sorted(os.listdir(out)) == ["rejected", REPORT_FILE]
    assert os.listdir(out / "rejected") == ["detector_int8.tflite"]


def test_two_interpreter_threads_lose_a_class_of_per_class_nms(trained, registered, tmp_path):
    out = tmp_path / "out"
    build_lib.build(trained.saved_model, str(out), kinds=("float32",))
    model = (out / "detector_float32.tflite").read_bytes()
    encoded = inputs.encoded_images([os.path.join(trained.examples, "Split-eval", "*")], limit=20)
    images = [inputs.pixels(e, SIZE) for e in encoded]
    detx_runner = TFLiteDetector(model, num_threads=2)
    assert detx_runner.num_threads == 1
    raw = tf.lite.Interpreter(model_content=model, num_threads=2).get_signature_runner()
    one, two = set(), set()
    for x in images:
        one |= set(detx_runner.detect(x).classes.tolist())
        outputs = raw(image=x[None])
        two |= set((outputs["detection_classes"][0, : int(outputs["num_detections"][0])] + 1).astype(int).tolist())
    # TFLite's kernel never runs NMS for class index 2 (label 3) on 2 threads (postprocess_op.py).
    assert one == {1, 2, 3} and two == {1, 2}
