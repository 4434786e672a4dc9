"""`detx export tflite` and `detx predict --tflite`, in process, on a small detx export (tflite/testing.py)."""

import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from detx.components.data.synth import SynthConfig, generate, label_map
from detx.components.tflite.report import REPORT_FILE, TFLiteReport
from detx.pipeline.cli import main
from testing.tflite import export_noisy, small_preset_registered


@pytest.fixture(scope="module")
def registered():
    with small_preset_registered():
        yield


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, registered):
    root = tmp_path_factory.mktemp("cli_tflite")
    label_map().write(str(root / "label_map.pbtxt"))
    return export_noisy(str(root / "model"), str(root / "label_map.pbtxt"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, saved_model):
    out = str(tmp_path_factory.mktemp("cli_out") / "tflite")
    result = CliRunner().invoke(main, ["export", "tflite", "--model", saved_model, "--out", out])
    assert result.exit_code == 0, result.output
    return out, result.stdout


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for image in generate(SynthConfig(num_images=2, seed=5, width=160, height=120, max_size=100)):
        path = folder / image.filename
        path.write_bytes(image.jpeg)
        paths.append(str(path))
    return paths


def test_export_writes_float_models_and_their_report(exported, saved_model):
    out, output = exported
    assert sorted(os.listdir(out)) == ["detector_float16.tflite", "detector_float32.tflite", REPORT_FILE]
    report = TFLiteReport.read(out)
    assert [m.kind for m in report.models] == ["float32", "float16"] and report.saved_model["path"] == saved_model
    assert report.models[0].map_50 is None  # no --eval: nothing measured
    assert output.splitlines()[0].startswith("SavedModel (test64): variables ")
    assert "float16" in output and output.strip().endswith(f"wrote {out}")


def test_export_refuses_bad_arguments_and_writes_nothing(tmp_path, saved_model):
    runner = CliRunner()
    out = str(tmp_path / "out")
    result = runner.invoke(main, ["export", "tflite", "--model", saved_model, "--out", out, "--int8"])
    assert result.exit_code == 2 and "--int8 needs --representative" in result.output
    result = runner.invoke(
        main, ["export", "tflite", "--model", saved_model, "--out", out, "--representative", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--representative is for --int8" in result.output
    # `--output`, its name before `--out` was the one name for what a command writes, still works (hidden).
    result = runner.invoke(main, ["export", "tflite", "--model", str(tmp_path), "--output", out])
    assert result.exit_code == 1
    assert "is not a SavedModel" in result.output and f"(nothing was written to {out})" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["export", "tflite", "--model", saved_model, "--out", out, "--int8", "--representative", str(empty)]
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "holds no images" in result.output
    assert not os.path.exists(out)


def test_predict_with_a_tflite_model_prints_the_same_json_and_draws(exported, images, tmp_path):
    out, _ = exported
    model = os.path.join(out, "detector_float32.tflite")
    draw_dir = tmp_path / "drawn"
    args = ["predict", *images, "--tflite", model, "--min-score", "0", "--draw", str(draw_dir)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in records] == images
    for record in records:
        # The gRPC path's keys; "version" is null (a file has none).
        assert set(record) == {"image", "model", "version", "detections", "drawn"}
        assert (record["model"], record["version"]) == ("detector_float32", None)
        assert record["detections"], record
        for d in record["detections"]:
            assert set(d) == {"label", "class_id", "score", "box"} and set(d["box"]) == {"ymin", "xmin", "ymax", "xmax"}
            assert d["label"] == ["circle", "square", "triangle"][d["class_id"] - 1]  # names from the metadata
            assert 0 <= d["box"]["ymin"] <= d["box"]["ymax"] <= 1
        scores = [d["score"] for d in record["detections"]]
        assert scores == sorted(scores, reverse=True)
        with Image.open(record["drawn"]) as drawn:
            assert drawn.format == "PNG" and drawn.size == (160, 120)


def test_predict_tflite_reports_bad_images_and_bad_flags(exported, images, tmp_path):
    out, _ = exported
    model = os.path.join(out, "detector_float16.tflite")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    result = CliRunner().invoke(main, ["predict", images[0], str(junk), "--tflite", model])
    assert result.exit_code == 1
    assert f"{junk}: not an image detx can read" in result.output and "1 of 2 image(s) failed" in result.output
    result = CliRunner().invoke(main, ["predict", images[0], "--tflite", model, "--raw"])
    assert result.exit_code == 2 and "--raw chooses a server signature" in result.output
    result = CliRunner().invoke(main, ["predict", images[0], "--tflite", str(junk)])
    assert result.exit_code == 1 and "not a TFLite detector converted by detx" in result.output
