"""The tiny preset learns, through the real pipeline: loss falls and mAP@0.5 (pycocotools) reaches 0.5.

This is the test that fails if the model stops learning. It trains for the
tiny preset's 800 steps on 640 synthetic images, about 6-7 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os

import pytest

from components.data.synth import SynthConfig, write_dataset
from components.evaluation.coco_metrics import evaluate, read_examples, serving_default_predictor
from components.modeling.config import preset
from components.trainer import export
from components.trainer.options import TrainerOptions
from pipeline.config import DataConfig, PipelineConfig, Stage
from pipeline.local_runner import ProjectPaths, run_local
from pipeline.run_report import latest_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_tiny_preset_learns_to_detect_shapes(tmp_path):
    data_dir = write_dataset(str(tmp_path / "coco"), SynthConfig(num_images=800, seed=3, min_size=48), "coco").out_dir
    project = str(tmp_path / "project")
    config = PipelineConfig(
        data=DataConfig(path=data_dir),
        stop_after=Stage.TRAINING,
        trainer=TrainerOptions(preset="tiny"),
        train_steps=800,
    )
    run_local(config, project, echo=lambda _: None)
    runs = {r.node: r for r in latest_run(ProjectPaths(project).metadata_path, "detx")}
    assert runs["Trainer"].state == "complete"

    with open(os.path.join(runs["Trainer"].outputs["model_run"][0], "history.json")) as f:
        losses = json.load(f)["loss"]
    assert len(losses) == 800 // preset("tiny")[1].checkpoint_every and losses[-1] < 0.5 * losses[0], losses

    model = export.load(os.path.join(runs["Trainer"].outputs["model"][0], "Format-Serving"))
    eval_examples = read_examples(os.path.join(runs["DetectionExampleGen"].outputs["examples"][0], "Split-eval", "*"))
    metrics = evaluate(serving_default_predictor(model.signatures["serving_default"]), eval_examples, num_classes=3)
    print(f"tiny preset after 800 steps: {metrics}")
    assert metrics.num_images == len(eval_examples) > 100
    assert metrics.map_50 >= 0.5, metrics
    assert min(metrics.ap_per_class.values()) > 0.1, metrics  # every class is learned, not just one
