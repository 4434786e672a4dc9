"""TFLite models of a real detx export: detections, metadata, the component, and bad input that leaves nothing behind.

The detector is the tiny preset's code at 64 px with a 32-channel FPN and noisy
random weights (a fresh network's constant head would tie every score),
exported by detx's export and registered as a preset (`test64`) so the loader
recognizes it as it does detx's own presets. The int8 gate needs a model with
real signal, trained: tests/components/tflite/trained_gate_check.py.
"""

import dataclasses
import json
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import label_map
from detx.components.evaluation.detections import Detections, unmatched
from detx.components.modeling import anchors as anchor_lib
from detx.components.modeling import box_coder
from detx.components.tflite import build as build_lib
from detx.components.tflite import convert, inputs, metadata, source
from detx.components.tflite.component import TFLiteModels
from detx.components.tflite.executor import Executor
from detx.components.tflite.interpreter import TFLiteDetector, TFLiteModelError
from detx.components.tflite.options import TFLiteOptions
from detx.components.tflite.postprocess_op import PostProcessSettings, op_attributes
from detx.components.tflite.report import REPORT_FILE, TFLiteReport
from testing.data import write_examples
from testing.evaluation import write_oracle_model
from testing.tflite import SMALL_CONFIG, SMALL_PRESET, export_noisy, small_preset_registered

MODEL = SMALL_CONFIG
SIZE = MODEL.image_size
PRESET = SMALL_PRESET
NAMES = ["circle", "square", "triangle"]


@dataclasses.dataclass(frozen=True)
class Exported:
    examples: str  # ExampleGen's layout: Split-train/, Split-eval/, label_map.pbtxt
    artifact: str  # the Trainer's model artifact folder
    saved_model: str  # its Format-Serving/


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(Named for what it stands in for: the Trainer's output.) Noisy random weights, exported."""
    root = tmp_path_factory.mktemp("noisy64")
    examples = write_examples(
        str(root / "examples"), 50, seed=3, width=SIZE, height=SIZE, min_size=21, max_size=48, max_objects=2
    )
    artifact = str(root / "model")
    saved_model = os.path.join(artifact, "Format-Serving")
    export_noisy(saved_model, os.path.join(examples, LABEL_MAP_FILENAME))
    return Exported(examples, artifact, saved_model)


@pytest.fixture(scope="module")
def registered():
    """`test64` among detx's presets while this module runs."""
    with small_preset_registered():
        yield


@pytest.fixture(scope="module")
def detector(trained, registered):
    return source.load_detector(trained.saved_model)


def _eval_images(trained, n=12):
    encoded = inputs.encoded_images([os.path.join(trained.examples, "Split-eval", "*")], limit=n)
    return [tf.io.decode_image(e, channels=3).numpy() for e in encoded]


def _reliable(reference, candidate):
    """The reference detections float rounding cannot push past the candidate's last place (both list 100)."""
    floor = float(candidate.scores.min()) + 1e-4 if len(candidate) == 100 else -1.0
    return reference.above(floor)


def _leftovers(parent):
    return sorted(name for name in os.listdir(parent) if "staging" in name)


def test_the_executor_writes_every_model_with_its_report_and_metadata(trained, registered, tmp_path):
    model = standard_artifacts.Model()
    model.uri = trained.artifact
    examples = standard_artifacts.Examples()
    examples.uri = trained.examples
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    output = TFLiteModels()
    output.uri = str(tmp_path / "tflite")
    os.makedirs(output.uri)  # TFX creates the output folder before the executor runs
    properties = {**TFLiteOptions(calibration_examples=16).exec_properties(), "model_name": "shapes"}
    Executor().Do({"model": [model], "examples": [examples]}, {"tflite_models": [output]}, properties)

    report = TFLiteReport.read(output.uri)
    assert report.saved_model["preset"] == PRESET and report.saved_model["path"] == trained.saved_model
    assert (report.eval_examples, report.calibration_examples) == (10, 16)
    by_kind = {m.kind: m for m in report.models}
    # Per-class NMS (the default) on one thread: float32 detects as the SavedModel does, their mAPs agree.
    assert by_kind["float32"].map_50 == pytest.approx(report.saved_model["map_50"], abs=1e-6)
    assert report.settings["eval_threads"] == 1
    assert [m.kind for m in report.models] == ["float32", "float16", "int8"]
    assert all(
        m.map_50 is not None and m.size_bytes == os.path.getsize(os.path.join(output.uri, m.file))
        for m in report.models
    )
    assert by_kind["int8"].size_bytes < 0.5 * by_kind["float32"].size_bytes
    shipped = [m.kind for m in report.models if m.shipped]
    assert output.get_string_custom_property("shipped") == ",".join(shipped)
    assert output.get_float_custom_property("int8_map_50") == pytest.approx(by_kind["int8"].map_50)
    assert json.loads((tmp_path / "tflite" / REPORT_FILE).read_text())["format"] == 1

    # The metadata reads back with the label map, in both input types.
    for kind, dtype in (("float32", np.float32), ("int8", np.uint8)):
        path = os.path.join(output.uri, by_kind[kind].file)
        data_ = open(path, "rb").read()
        md = metadata.read_metadata(data_)
        assert md.labels == NAMES
        assert (md.name, md.min_parser_version) == (f"shapes {kind}", "1.2.0")
        assert (md.input_name, md.norm_mean, md.norm_std) == ("image", [127.5], [127.5])
        assert md.output_names == ["location", "category", "score", "number of detections"]
        with zipfile.ZipFile(path) as archive:
            assert archive.namelist() == ["labelmap.txt"]
        interpreter = tf.lite.Interpreter(model_content=data_)
        interpreter.allocate_tensors()
        (image,) = interpreter.get_input_details()
        assert image["dtype"] == dtype and list(image["shape"]) == [1, SIZE, SIZE, 3]
        # By position too: boxes, classes, scores, count (what the Coral and MediaPipe samples read).
        assert [list(o["shape"]) for o in interpreter.get_output_details()] == [[1, 100, 4], [1, 100], [1, 100], [1]]
        assert TFLiteDetector(data_).label_names() == dict(enumerate(NAMES, start=1))


def test_float32_detections_match_the_saved_model_s(trained, detector):
    # Per-class NMS, as detx's (the default): boxes of the same class IoU >= 0.99, scores within 0.01.
    model = convert.convert(detector, "float32", PostProcessSettings.from_config(MODEL, 3))
    tflite = TFLiteDetector(model, num_threads=2)
    assert tflite.num_threads == 1  # TFLite's per-class NMS skips a class on more threads
    serving = detector.saved_model.signatures["serving_default"]
    for image in _eval_images(trained):
        reference = Detections.from_outputs({k: v.numpy() for k, v in serving(input_tensor=image[None]).items()})
        got = tflite.detect(inputs.normalize(image[None], SIZE)[0])
        assert len(reference) == len(got) == 100
        assert unmatched(_reliable(reference, got), got, min_iou=0.99, score_tolerance=0.01) == []


def test_the_fast_nms_model_runs_class_agnostic_nms_over_the_same_network(trained, detector):
    model = convert.convert(detector, "float32", PostProcessSettings.from_config(MODEL, 3, use_regular_nms=False))
    attributes = op_attributes(model)
    assert attributes["use_regular_nms"] is False
    assert attributes["detections_per_class"] == MODEL.max_detections_per_class  # the converter drops it
    tflite = TFLiteDetector(model, num_threads=2)
    assert tflite.num_threads == 2
    anchors = tf.constant(anchor_lib.generate(MODEL))
    for image in _eval_images(trained, 4):
        x = inputs.normalize(image[None], SIZE)
        codes, logits = detector.model(x, training=False)
        boxes = box_coder.decode(codes[0], anchors, MODEL.box_code_scales)
        scores = tf.sigmoid(logits[0])[:, 1:]
        best = tf.reduce_max(scores, axis=1)
        keep = tf.image.non_max_suppression(boxes, best, 100, MODEL.iou_threshold, MODEL.score_threshold)
        kept = tf.clip_by_value(tf.gather(boxes, keep), 0.0, 1.0).numpy()
        classes = tf.gather(tf.argmax(scores, axis=1), keep).numpy() + 1
        reference = Detections(kept, classes, tf.gather(best, keep).numpy())
        got = tflite.detect(x[0])
        assert unmatched(_reliable(reference, got), got, min_iou=0.99, score_tolerance=0.01) == []


def test_bad_representative_data_is_refused_with_what_to_do(tmp_path, trained):
    with pytest.raises(inputs.RepresentativeDataError, match="an int8 model needs representative images"):
        build_lib.build(trained.saved_model, str(tmp_path / "out"), kinds=("int8",))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(inputs.RepresentativeDataError, match=r"the representative set .*empty holds no images"):
        inputs.representative_images(str(empty), SIZE, limit=10)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 224, 224, 3), np.uint8))
    with pytest.raises(
        inputs.RepresentativeDataError,
        match=r"holds 224x224 images but the model's input is 64x64: resize them to 64x64, or give the image files",
    ):
        inputs.representative_images(str(wrong), SIZE, limit=10)
    np.save(wrong, np.zeros((0, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(inputs.RepresentativeDataError, match="holds no images"):
        inputs.representative_images(str(wrong), SIZE, limit=10)
    with pytest.raises(inputs.RepresentativeDataError, match="does not exist"):
        inputs.representative_images(str(tmp_path / "nowhere"), SIZE, limit=10)
    # The train split of an ExampleGen folder, a seeded sample of the size asked for.
    sample = inputs.representative_images(trained.examples, SIZE, limit=8)
    assert sample.shape == (8, SIZE, SIZE, 3) and sample.min() >= -1 and sample.max() <= 1
    assert not (tmp_path / "out").exists()


def test_a_saved_model_without_detx_s_signature_or_no_saved_model_is_refused(tmp_path):
    oracle = write_oracle_model(str(tmp_path / "oracle"))
    os.makedirs(os.path.join(oracle, "assets"), exist_ok=True)
    label_map().write(os.path.join(oracle, "assets", LABEL_MAP_FILENAME))
    out = tmp_path / "out"
    with pytest.raises(source.DetectorSourceError, match=r"has no 'serving_default' signature \(it has: tf_example\)"):
        build_lib.build(oracle, str(out), kinds=("float32",))
    with pytest.raises(source.DetectorSourceError, match="is not a SavedModel"):
        build_lib.build(str(tmp_path), str(out), kinds=("float32",))
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_network_tflite_cannot_run_is_a_conversion_error(detector):
    inputs_ = keras.Input((SIZE, SIZE, 3))
    codes, logits = detector.model(inputs_)
    odd = keras.Model(inputs_, [keras.layers.Lambda(tf.math.erfinv)(codes), logits])
    broken = source.Detector(odd, MODEL, detector.label_map, PRESET, "/models/odd")
    with pytest.raises(
        convert.ConversionError,
        match=r"converting /models/odd to a float32 TFLite model failed: the network needs ops TFLite does not "
        r"have: Erfinv\. Nothing was written",
    ):
        convert.convert(broken, "float32", PostProcessSettings.from_config(MODEL, 3))


def test_a_failure_midway_leaves_no_output_and_no_staging(tmp_path, trained, detector, monkeypatch):
    real = build_lib.convert

    def int8_fails(detector, kind, settings, representative=None):
        if kind == "int8":  # after float32 is written to the staging folder
            raise convert.ConversionError("converting to int8 failed: injected")
        return real(detector, kind, settings, representative)

    monkeypatch.setattr(build_lib, "convert", int8_fails)
    out = tmp_path / "out"
    with pytest.raises(convert.ConversionError, match="injected"):
        build_lib.build(
            trained.saved_model, str(out), kinds=("float32", "int8"), representative=trained.examples, detector=detector
        )
    assert not out.exists() and _leftovers(tmp_path) == []


def test_an_output_folder_with_files_is_never_overwritten(tmp_path, trained):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(build_lib.OutputExistsError, match="exists and is not an empty folder"):
        build_lib.build(trained.saved_model, str(out), kinds=("float32",))
    assert os.listdir(out) == ["keep.txt"]


def test_the_interpreter_refuses_a_wrong_size_and_foreign_bytes(detector):
    model = convert.convert(detector, "float16", PostProcessSettings.from_config(MODEL, 3))
    tflite = TFLiteDetector(model)
    with pytest.raises(TFLiteModelError, match=r"the image is \(100, 100, 3\) but the model takes 64x64x3 inputs"):
        tflite.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(TFLiteModelError, match="not a TFLite detector converted by detx"):
        TFLiteDetector(b"not a model at all")


def test_the_component_declares_its_channels_and_parameters():
    from tfx import types

    from detx.components.tflite.component import DetectionTFLiteConverter

    component = DetectionTFLiteConverter(
        model=types.Channel(type=standard_artifacts.Model),
        examples=types.Channel(type=standard_artifacts.Examples),
        options=TFLiteOptions(calibration_examples=50, use_regular_nms=False),
        max_int8_map50_drop=0.05,
        model_name="shapes",
    )
    assert component.outputs["tflite_models"].type_name == "detx.TFLiteModels"
    assert component.exec_properties == {
        "calibration_examples": 50,
        "max_int8_map50_drop": 0.05,
        "use_regular_nms": 0,
        "num_threads": 2,
        "seed": 0,
        "model_name": "shapes",
    }
