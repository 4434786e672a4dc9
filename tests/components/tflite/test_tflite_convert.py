"""Converting a real detx export to TFLite: detections, metadata, and bad input that leaves nothing behind.

The detector is the tiny preset with noisy random weights (a fresh network's
constant head would tie every score), exported by detx's own export.
"""

import io
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from detx.components.data.synth import SynthConfig, generate, label_map
from detx.components.evaluation.testing import write_oracle_model
from detx.components.modeling import anchors as anchor_lib
from detx.components.modeling import box_coder
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.tflite import build as build_lib
from detx.components.tflite import convert, inputs, metadata, source
from detx.components.tflite.detections import Detections, unmatched
from detx.components.tflite.interpreter import TFLiteDetector, TFLiteModelError
from detx.components.tflite.options import TFLiteOptions
from detx.components.tflite.postprocess_op import PostProcessSettings, op_attributes
from detx.components.tflite.report import REPORT_FILE, TFLiteReport
from detx.components.trainer import export

CONFIG, _ = preset("tiny")
SIZE = CONFIG.image_size


def _export_noisy(export_dir, seed=0):
    keras.utils.set_random_seed(seed)
    network = build_network(CONFIG, 3)
    rng = np.random.default_rng(seed)
    for variable in network.model.weights:
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape).astype(variable.dtype))
    path = os.path.join(os.path.dirname(export_dir), "label_map.pbtxt")
    label_map().write(path)
    return export.export(network, CONFIG, path, export_dir, batching=None)


def _images(n=3):
    """Synthetic scenes (shapes on texture) at several sizes, as uint8 arrays."""
    out = []
    for i, image in enumerate(generate(SynthConfig(num_images=n, seed=11, width=320, height=240))):
        pixels = np.asarray(Image.open(io.BytesIO(image.jpeg)).convert("RGB"))
        out.append(pixels[: 200 + 10 * i])
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _export_noisy(str(tmp_path_factory.mktemp("noisy") / "model"))


@pytest.fixture(scope="module")
def detector(exported):
    return source.load_detector(exported)


@pytest.fixture(scope="module")
def saved(exported):
    return tf.saved_model.load(exported).signatures["serving_default"]


def _reliable(reference, candidate):
    """The reference detections float rounding cannot push past the candidate's last place (both list 100)."""
    floor = float(candidate.scores.min()) + 1e-4 if len(candidate) == 100 else -1.0
    return reference.above(floor)


def test_the_loader_finds_the_preset_and_restores_the_exported_weights(detector, exported):
    assert (detector.preset, detector.config, detector.label_map.names) == ("tiny", CONFIG, label_map().names)
    assert detector.path == exported


def test_float32_detections_match_the_saved_model_s(detector, saved):
    # Per-class NMS, as detx's: the same detections, boxes of the same class IoU >= 0.99, scores within 0.01.
    model = convert.convert(detector, "float32", PostProcessSettings.from_config(CONFIG, 3, use_regular_nms=True))
    tflite = TFLiteDetector(model, num_threads=2)
    assert tflite.num_threads == 1  # per-class NMS runs on one thread (TFLite's kernel skips a class on more)
    classes = set()
    for image in _images():
        reference = Detections.from_outputs({k: v.numpy() for k, v in saved(input_tensor=image[None]).items()})
        got = tflite.detect(inputs.normalize(image[None], SIZE)[0])
        assert len(reference) == len(got) == 100
        assert unmatched(_reliable(reference, got), got, min_iou=0.99, score_tolerance=0.01) == []
        classes |= set(got.classes.tolist())
    assert len(classes) >= 2


def test_the_default_model_runs_class_agnostic_nms_over_the_same_network(detector):
    model = convert.convert(detector, "float32", PostProcessSettings.from_config(CONFIG, 3))
    assert op_attributes(model)["use_regular_nms"] is False
    assert op_attributes(model)["detections_per_class"] == CONFIG.max_detections_per_class
    tflite = TFLiteDetector(model, num_threads=2)
    anchors = tf.constant(anchor_lib.generate(CONFIG))
    for image in _images(2):
        x = inputs.normalize(image[None], SIZE)
        codes, logits = detector.model(x, training=False)
        boxes = box_coder.decode(codes[0], anchors, CONFIG.box_code_scales)
        scores = tf.sigmoid(logits[0])[:, 1:]
        best = tf.reduce_max(scores, axis=1)
        keep = tf.image.non_max_suppression(boxes, best, 100, CONFIG.iou_threshold, CONFIG.score_threshold)
        kept = tf.clip_by_value(tf.gather(boxes, keep), 0.0, 1.0).numpy()
        reference = Detections(
            kept, tf.gather(tf.argmax(scores, axis=1), keep).numpy() + 1, tf.gather(best, keep).numpy()
        )
        got = tflite.detect(x[0])
        assert unmatched(_reliable(reference, got), got, min_iou=0.99, score_tolerance=0.01) == []


def test_metadata_reads_back_with_the_label_map(tmp_path, exported):
    folder = tmp_path / "rep"
    folder.mkdir()
    for i, image in enumerate(_images(2)):
        Image.fromarray(image).save(folder / f"{i}.png")
    out = str(tmp_path / "out")
    report = build_lib.build(exported, out, kinds=("float32", "int8"), representative=str(folder))
    assert report.calibration_examples == 2
    for kind, dtype in (("float32", np.float32), ("int8", np.uint8)):
        data = open(os.path.join(out, f"detector_{kind}.tflite"), "rb").read()
        md = metadata.read_metadata(data)
        assert md.labels == ["circle", "square", "triangle"]
        assert (md.input_name, md.norm_mean, md.norm_std) == ("image", [127.5], [127.5])
        assert md.output_names == ["location", "category", "score", "number of detections"]
        assert md.min_parser_version == "1.2.0" and md.name == f"detx {kind}"
        with zipfile.ZipFile(os.path.join(out, f"detector_{kind}.tflite")) as archive:
            assert archive.namelist() == ["labelmap.txt"]
        interpreter = tf.lite.Interpreter(model_content=data)
        interpreter.allocate_tensors()
        (image,) = interpreter.get_input_details()
        assert image["dtype"] == dtype and list(image["shape"]) == [1, SIZE, SIZE, 3]
        # By position too: boxes, classes, scores, count (what Coral and MediaPipe samples read).
        assert [list(o["shape"]) for o in interpreter.get_output_details()] == [[1, 100, 4], [1, 100], [1, 100], [1]]
        assert TFLiteDetector(data).label_names() == {1: "circle", 2: "square", 3: "triangle"}
    assert TFLiteReport.read(out) == report
    assert sorted(os.listdir(out)) == ["detector_float32.tflite", "detector_int8.tflite", REPORT_FILE]


def _leftovers(parent):
    return sorted(name for name in os.listdir(parent) if "staging" in name)


def test_bad_representative_data_stops_before_anything_is_written(tmp_path, exported):
    out = tmp_path / "out"
    with pytest.raises(inputs.RepresentativeDataError, match="an int8 model needs representative images"):
        build_lib.build(exported, str(out), kinds=("int8",))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(inputs.RepresentativeDataError, match=r"the representative set .*empty holds no images"):
        build_lib.build(exported, str(out), kinds=("float32", "int8"), representative=str(empty))
    assert not out.exists() and _leftovers(tmp_path) == []
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 224, 224, 3), np.uint8))
    with pytest.raises(
        inputs.RepresentativeDataError,
        match=r"holds 224x224 images but the model's input is 192x192: resize them to 192x192",
    ):
        inputs.representative_images(str(wrong), SIZE, limit=10)
    np.save(wrong, np.zeros((0, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(inputs.RepresentativeDataError, match="holds no images"):
        inputs.representative_images(str(wrong), SIZE, limit=10)
    with pytest.raises(inputs.RepresentativeDataError, match="does not exist"):
        inputs.representative_images(str(tmp_path / "nowhere"), SIZE, limit=10)


def test_a_saved_model_without_detx_s_signature_or_no_saved_model_is_refused(tmp_path):
    oracle = write_oracle_model(str(tmp_path / "oracle"))
    os.makedirs(os.path.join(oracle, "assets"), exist_ok=True)
    label_map().write(os.path.join(oracle, "assets", "label_map.pbtxt"))
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
    broken = source.Detector(odd, CONFIG, detector.label_map, "tiny", "/models/odd")
    with pytest.raises(
        convert.ConversionError,
        match=r"converting /models/odd to a float32 TFLite model failed: the network needs ops TFLite does not "
        r"have: Erfinv\. Nothing was written",
    ):
        convert.convert(broken, "float32", PostProcessSettings.from_config(CONFIG, 3))


def test_a_failure_midway_leaves_no_output_and_no_staging(tmp_path, exported, monkeypatch):
    real = build_lib.convert

    def int8_fails(detector, kind, settings, representative=None):
        if kind == "int8":  # after float32 is written to the staging folder
            raise convert.ConversionError("converting to int8 failed: injected")
        return real(detector, kind, settings, representative)

    monkeypatch.setattr(build_lib, "convert", int8_fails)
    rep = tmp_path / "rep.npy"
    np.save(rep, np.stack(_images(1)[0:1] * 2)[:, :SIZE, :SIZE])
    out = tmp_path / "out"
    with pytest.raises(convert.ConversionError, match="injected"):
        build_lib.build(exported, str(out), kinds=("float32", "int8"), representative=str(rep))
    assert not out.exists() and _leftovers(tmp_path) == []


def test_an_output_folder_with_files_is_never_overwritten(tmp_path, exported):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(build_lib.OutputExistsError, match="exists and is not an empty folder"):
        build_lib.build(exported, str(out), kinds=("float32",))
    assert os.listdir(out) == ["keep.txt"]


def test_the_interpreter_refuses_a_wrong_size_and_foreign_bytes(detector):
    model = convert.convert(detector, "float16", PostProcessSettings.from_config(CONFIG, 3))
    tflite = TFLiteDetector(model)
    with pytest.raises(TFLiteModelError, match=r"the image is \(100, 100, 3\) but the model takes 192x192x3"):
        tflite.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(TFLiteModelError, match="not a TFLite detector converted by detx"):
        TFLiteDetector(b"not a model at all")
    assert TFLiteOptions().use_regular_nms is False
