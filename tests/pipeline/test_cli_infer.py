"""`detx infer` through click: the served version by default, spans, resume checks and the errors users meet."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from detx.components.model_store import ModelStore
from detx.pipeline.cli import main
from detx.pipeline.cli.infer import infer_command
from tests.components.batch_inference.conftest import MAX_PIXELS, shared_tiny_model, write_images


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("images"))
    write_images(root, count=4)  # 5 good images, 3 bad
    return root


@pytest.fixture
def beam_config(tmp_path) -> str:
    path = tmp_path / "beam.yaml"
    path.write_text("beam_args: [--runner=FnApiRunner]\n")  # one worker: one model load
    return str(path)


def _infer(*args: str) -> object:
    # Through `detx` itself: a command invoked alone caches click's help option without `-h`.
    return CliRunner().invoke(main, [infer_command.name, *args], catch_exceptions=False)


def test_the_served_version_scores_a_folder_and_a_rerun_checks_the_job(model, images, beam_config, tmp_path) -> None:
    project, out = str(tmp_path / "project"), str(tmp_path / "out")
    ModelStore(os.path.join(project, "models", "detx")).push(model, {})
    common = ["--images", images, "--out", out, "--project", project, "--config", beam_config]
    common += ["--max-pixels", str(MAX_PIXELS), "--shard-size", "3"]
    result = _infer(*common)
    assert result.exit_code == 0, result.output
    assert "8 images in 3 shards of 3" in result.output and "model version 1" in result.output
    assert "shards 3/3 done" in result.output
    assert "Scored 5 of 8 images" in result.output and "skipped 3 (corrupt or truncated 1" in result.output
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert (summary["model_version"], summary["scored"], summary["skipped"]) == (1, 5, 3)

    refused = _infer(*common, "--min-score", "0.5")
    assert refused.exit_code == 1
    assert "min_score: 0.0 there, 0.5 now" in refused.output and "pass --overwrite" in refused.output

    replaced = _infer(*common, "--min-score", "0.5", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["detections"] == 0  # a random-weight detector scores ~0.01


def test_a_span_of_a_span_root(model, images, beam_config, tmp_path) -> None:
    root = tmp_path / "spans"
    shutil.copytree(os.path.join(images, "a"), root / "span-1" / "images")
    shutil.copytree(os.path.join(images, "phone"), root / "span-2" / "images")
    out = str(tmp_path / "out")
    result = _infer("--data", str(root), "--span", "1", "--model", model, "--out", out, "--config", beam_config)
    assert result.exit_code == 0, result.output
    assert f"from {root / 'span-1'}" in result.output and "Scored 2 of 2 images" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give either --images DIR or --data SPAN_ROOT"),
        (["--images", "IMAGES", "--data", "IMAGES"], 2, "give either --images DIR or --data SPAN_ROOT"),
        (["--images", "IMAGES", "--span", "2"], 2, "--span goes with --data"),
        (["--data", "IMAGES"], 1, "has no span folders (span-1, span-2, ...)"),
        (["--images", "IMAGES"], 1, "no version is served in"),
        (["--images", "IMAGES", "--model", "7"], 1, "no complete version 7 in"),
        (["--images", "IMAGES", "--model", "IMAGES"], 1, "is not a SavedModel folder"),
    ],
)
def test_errors_name_the_problem_and_the_fix(images, tmp_path, args, code, message) -> None:
    args = [images if a == "IMAGES" else a for a in args]
    result = _infer(*args, "--out", str(tmp_path / "out"), "--project", str(tmp_path / "project"))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_version_lists_the_versions(model, images, tmp_path) -> None:
    project = str(tmp_path / "project")
    ModelStore(os.path.join(project, "models", "detx")).push(model, {})
    result = _infer("--images", images, "--model", "7", "--out", str(tmp_path / "out"), "--project", project)
    assert result.exit_code == 1
    assert "there is no complete version 7" in result.output and "(versions: 1)" in result.output
    missing = _infer("--images", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--project", project)
    assert missing.exit_code == 1
    assert f"the image folder {tmp_path / 'nope'} does not exist; pass a folder of images to --images" in missing.output
