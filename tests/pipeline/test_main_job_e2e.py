"""The main job end to end: learn and push version 1; a worse model is not blessed; an unchanged run is cached.

Run 1 (the session fixture `trained_project` in tests/conftest.py, which the
notebook and web page tests read too) is also the test that fails if the model
stops learning: the tiny preset's 800 steps on 640 synthetic training images,
about 7 minutes on 2 CPU cores, must reach mAP@0.5 0.5 (pycocotools on
`serving_default`). Runs 2 and 3 go to a copy of that project, so that its
latest run stays run 1 for the tests that read it, before or after this one.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from detx.components.evaluation.coco_metrics import evaluate, read_examples, serving_default_predictor
from detx.components.evaluator.report import EvaluationReport
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.trainer import export
from detx.pipeline.cli import main
from detx.pipeline.project import ProjectPaths
from detx.pipeline.run_report import latest_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_push_then_refuse_a_worse_model_then_serve_from_cache(trained_project, tmp_path):
    data_dir, project = trained_project.data_dir, trained_project.project
    paths = ProjectPaths(project)
    store = ModelStore(paths.push_destination("detx"))

    # Run 1 (the `trained_project` fixture): nothing in production; the model learns and is pushed as version 1.
    runs = {r.node: r for r in latest_run(paths.metadata_path, "detx")}
    assert all(r.state == "complete" for r in runs.values()), runs

    with open(os.path.join(runs["Trainer"].outputs["model_run"][0], "history.json")) as f:
        losses = json.load(f)["loss"]
    assert len(losses) == 800 // preset("tiny")[1].checkpoint_every and losses[-1] < 0.5 * losses[0], losses
    model = export.load(os.path.join(runs["Trainer"].outputs["model"][0], "Format-Serving"))
    eval_examples = read_examples(os.path.join(runs["DetectionExampleGen"].outputs["examples"][0], "Split-eval", "*"))
    reference = evaluate(serving_default_predictor(model.signatures["serving_default"]), eval_examples, num_classes=3)
    print(f"tiny preset after 800 steps: {reference}")
    assert reference.num_images == len(eval_examples) > 100
    assert reference.map_50 >= 0.5, reference
    assert min(reference.ap_per_class.values()) > 0.1, reference  # every class is learned, not just one

    report = EvaluationReport.read(runs["DetectionEvaluator"].outputs["blessing"][0])
    # What TFMA reports in the pipeline agrees with pycocotools on the same model and images.
    assert abs(report.metrics["map"] - reference.map) < 0.01, (report.metrics, reference)
    assert abs(report.metrics["map_50"] - reference.map_50) < 0.01, (report.metrics, reference)
    assert report.blessed and report.baseline_version is None
    assert store.complete_versions() == [1] and store.serving_version() == 1
    lineage = store.lineage(1)
    assert lineage["data"]["source"] == data_dir and lineage["metrics"]["map_50"] == report.metrics["map_50"]
    assert lineage["model"]["uri"] == runs["Trainer"].outputs["model"][0]

    # Runs 2 and 3 in a copy of the project (the notebooks read the shared project's latest run: run 1's).
    copy = ProjectPaths(str(tmp_path / "project"))
    shutil.copytree(project, copy.project_dir)
    store = ModelStore(copy.push_destination("detx"))

    # Run 2: a handful of steps gives a clearly worse model: not blessed, nothing pushed, and the summary says why.
    args = ["run", "--data", data_dir, "--project", copy.project_dir, "--preset", "tiny", "--train-steps", "5"]
    result = CliRunner().invoke(main, [*args, "--min-map50", "0.5"])
    assert result.exit_code == 0, result.output
    assert "Not blessed: mAP@0.5" in result.output and "below production version 1" in result.output, result.output
    assert "Pushed: nothing" in result.output and "the served version stays 1" in result.output, result.output
    assert store.complete_versions() == [1]

    # Run 3: nothing changed (same data, config and model in production): every component comes from the cache.
    result = CliRunner().invoke(main, [*args, "--min-map50", "0.5"])
    assert result.exit_code == 0, result.output
    states = {r.node: r.state for r in latest_run(copy.metadata_path, "detx")}
    assert set(states.values()) == {"cached"} and len(states) == 9, states
    assert store.complete_versions() == [1]
    # The shared project is as run 1 left it.
    assert {r.state for r in latest_run(paths.metadata_path, "detx")} == {"complete"}
