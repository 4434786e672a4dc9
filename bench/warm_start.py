"""Warm start vs from scratch on the ct demo's drifted spans: mAP@0.5 along training, steps to production's mAP.

    .venv/bin/python bench/warm_start.py [--steps 400] [--repeats 3] [--every 25] [--rates 0.25,0.5,1]

The `make ct-demo` spans (400 images; 100 more; 300 darker ones, mostly
circles), the tiny preset:

1. production: `--steps` from scratch on span 1 (as the demo's first
   `detx ct run`), exported with its training weights and pushed;
2. on spans 2-3 (the demo's drift-triggered window), side by side per seed:
   from scratch with `--steps` (the full schedule), and a warm start from
   production on the warm-start schedule `run_fn` would use
   (`TrainerOptions.configs(..., warm_start=True)`), once per
   `trainer.warm_start_learning_rate` in `--rates`; every `--every` steps the
   network as it stands is scored on the window's eval split (pycocotools,
   the unfolded network in process).

It reports mAP@0.5 of both after the warm schedule's N steps, and the steps
each needs to reach production's mAP@0.5 on the new eval split (the mAP the
Evaluator compares a candidate with). A warm start begins at production's
weights, so its count is the first scored step at or above that mAP after
training started (a dip below it during warm-up counts against it). Then the
sizes the training weights add to an exported model, for tiny and zoo320.
Each trained model is also scored on span 1's eval split at the end: what a
start forgets of the data production was trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

import keras
import numpy as np
from common import OUT

from detx.components.data import spans
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.data.synth import SynthConfig, label_map, write_dataset
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.model_store import ModelStore
from detx.components.modeling.config import ModelConfig, preset
from detx.components.modeling.network import DetectorNetwork, build_network
from detx.components.trainer import data, export, pretrained, train, training_weights
from detx.components.trainer.options import PRODUCTION, TrainerOptions
from detx.pipeline.config import DataConfig, PipelineConfig, Stage
from detx.pipeline.local_runner import run_local
from detx.pipeline.project import ProjectPaths
from detx.pipeline.run_report import latest_run

# The ct demo's deliveries (Makefile, ct-demo).
DELIVERIES = (
    SynthConfig(400, seed=1),
    SynthConfig(100, seed=2, first_id=401),
    SynthConfig(300, seed=3, first_id=501, brightness=0.5, class_weights=(4.0, 1.0, 1.0)),
)


def map_50(network: DetectorNetwork, model_config: ModelConfig, examples_dir: str, eval_records: list[bytes]) -> float:
    """mAP@0.5 of the network as it stands (unfolded, no batching) on serialized eval examples."""
    module = export.DetectorModule(
        network, model_config, os.path.join(examples_dir, LABEL_MAP_FILENAME), None, fold_batchnorm=False
    )
    return float(evaluate(module.detect_examples, eval_records, network.num_classes).map_50)


class _Scores(keras.callbacks.Callback):
    """Scores the network every `every` steps (inference mode: training is not disturbed)."""

    def __init__(self, score: Any, every: int) -> None:
        super().__init__()
        self._score, self._every = score, every
        self.curve: dict[int, float] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.curve[0] = self._score()  # a warm start begins at production's weights

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if step % self._every == 0:
            self.curve[step] = self._score()


def examples_of(project: str, span_root: str, span: int, window: int) -> str:
    """DetectionExampleGen's Examples artifact for a span window (the pipeline's data steps only)."""
    config = PipelineConfig(
        data=DataConfig(path=span_root, format="coco", span=span, span_window=window),
        stop_after=Stage.VALIDATION,
    )
    run_local(config, project, echo=lambda _: None)
    runs = latest_run(ProjectPaths(project).metadata_path, "detx")
    return str(next(r for r in runs if r.node == "DetectionExampleGen").outputs["examples"][0])


def run_arm(
    examples_dir: str,
    first_dir: str,
    options: TrainerOptions,
    steps: int,
    warm: bool,
    dest: str,
    every: int,
    run_dir: str,
) -> dict[str, Any]:
    """One training on the window, as run_fn would set it up, scored along the way and at the end on span 1."""
    model_config, train_config = options.configs(steps, warm_start=warm)
    eval_records = read_examples(os.path.join(examples_dir, "Split-eval", "*"))
    start = pretrained.resolve(PRODUCTION if warm else "", dest, "", log=print)
    labels = LabelMap.read(os.path.join(examples_dir, LABEL_MAP_FILENAME))
    network: dict[str, DetectorNetwork] = {}

    def initialize(net: DetectorNetwork) -> None:
        network["net"] = net
        pretrained.start_initializer(start, options.restore_scope, labels, model_config, log=print)(net)

    scores = _Scores(lambda: map_50(network["net"], model_config, examples_dir, eval_records), every)
    began = time.perf_counter()
    train.train(
        lambda b: data.make_dataset(
            os.path.join(examples_dir, "Split-train", "*"), model_config, train_config, batch_size=b
        ),
        model_config,
        train_config,
        3,
        run_dir,
        initialize=initialize,
        callbacks=[scores],
    )
    seconds = time.perf_counter() - began
    # What is left for production's own data (span 1's eval split): how much a start forgets.
    first = map_50(network["net"], model_config, first_dir, read_examples(os.path.join(first_dir, "Split-eval", "*")))
    return {"steps": train_config.train_steps, "curve": scores.curve, "seconds": seconds, "map_50_span1": first}


def steps_to(curve: dict[int, float], target: float) -> int | None:
    """The first scored step after training began at or above `target` (None: never)."""
    return next((step for step, value in sorted(curve.items()) if step > 0 and value >= target - 1e-9), None)


def weight_sizes(tmp: str) -> dict[str, dict[str, int]]:
    """Bytes of the exported SavedModel and of the training weights run_fn adds, per preset."""
    out = {}
    for name in ("tiny", "zoo320"):
        model_config, _ = preset(name)
        network = build_network(model_config, 3)
        labels = os.path.join(tmp, f"labels-{name}")
        os.makedirs(labels)
        label_map().write(os.path.join(labels, LABEL_MAP_FILENAME))
        model_dir = export.export(network, model_config, os.path.join(labels, LABEL_MAP_FILENAME), f"{tmp}/{name}")
        saved = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(model_dir) for f in fs)
        training_weights.write(network, model_config, model_dir)
        out[name] = {"saved_model_bytes": saved, "training_weights_bytes": training_weights.size_bytes(model_dir)}
    return out


def main() -> None:
    """Runs the comparison, prints and saves the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="the full schedule (the ct demo's --train-steps)")
    parser.add_argument("--repeats", type=int, default=3, help="seeds per arm")
    parser.add_argument("--every", type=int, default=25, help="steps between scores")
    parser.add_argument("--rates", default="0.25,0.5,1", help="warm_start_learning_rate values to compare")
    args = parser.parse_args()
    record: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        record["sizes"] = weight_sizes(os.path.join(tmp, "sizes"))
        span_root, project = os.path.join(tmp, "spans"), os.path.join(tmp, "project")
        for i, config in enumerate(DELIVERIES, start=1):
            spans.add_span(span_root, write_dataset(os.path.join(tmp, f"delivery{i}"), config, "coco").out_dir)
        first, drifted = examples_of(project, span_root, 1, 1), examples_of(project, span_root, 3, 2)
        # Production: span 1, from scratch, exported as run_fn does and pushed.
        options = TrainerOptions(preset="tiny")
        model_config, train_config = options.configs(args.steps)
        result = train.train(
            lambda b: data.make_dataset(
                os.path.join(first, "Split-train", "*"), model_config, train_config, batch_size=b
            ),
            model_config,
            train_config,
            3,
            os.path.join(tmp, "production-run"),
        )
        model_dir = export.export(result.network, model_config, os.path.join(first, LABEL_MAP_FILENAME), tmp + "/p")
        training_weights.write(result.network, model_config, model_dir)
        dest = os.path.join(tmp, "models")
        ModelStore(dest).push(model_dir, {})
        eval_records = read_examples(os.path.join(drifted, "Split-eval", "*"))
        target = map_50(result.network, model_config, drifted, eval_records)
        record["production_map_50_new_eval"] = target
        record["production_map_50_own_eval"] = map_50(
            result.network, model_config, first, read_examples(os.path.join(first, "Split-eval", "*"))
        )
        runs: list[dict[str, Any]] = []
        rates = [float(r) for r in args.rates.split(",")]
        arms = [("scratch", False, 1.0)] + [(f"warm, rate x{r:g}", True, r) for r in rates]
        for seed in range(args.repeats):
            # The same seed's from-scratch and warm runs side by side.
            for name, warm, rate in arms:
                seeded = TrainerOptions(preset="tiny", seed=seed, warm_start_learning_rate=rate)
                run_dir = os.path.join(tmp, f"{name}{seed}")
                arm = run_arm(drifted, first, seeded, args.steps, warm, dest, args.every, run_dir)
                runs.append({"arm": name, "seed": seed, **arm, "steps_to_production": steps_to(arm["curve"], target)})
                print(json.dumps(runs[-1]))
    record["runs"] = runs
    warm_n = next(r["steps"] for r in runs if r["arm"] != "scratch")
    summary: dict[str, Any] = {}
    for name, _, _ in arms:
        arm_runs = [r for r in runs if r["arm"] == name]
        reached = [r["steps_to_production"] for r in arm_runs]
        summary[name] = {
            "map_50_at_n": statistics.median(r["curve"].get(warm_n, float("nan")) for r in arm_runs),
            "map_50_final": statistics.median(r["curve"][max(r["curve"])] for r in arm_runs),
            "steps_to_production": reached,
            "map_50_span1": statistics.median(r["map_50_span1"] for r in arm_runs),
            "seconds": statistics.median(r["seconds"] for r in arm_runs),
        }
    scratch_steps = [s for s in summary["scratch"]["steps_to_production"] if s is not None]
    for name, warm, _ in arms:
        warm_steps = [s for s in summary[name]["steps_to_production"] if s is not None]
        if warm and scratch_steps and warm_steps:
            summary[name]["ratio_to_scratch"] = float(np.median(warm_steps) / np.median(scratch_steps))
    record["n"] = warm_n
    record["summary"] = summary
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "warm_start.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps({k: v for k, v in record.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
