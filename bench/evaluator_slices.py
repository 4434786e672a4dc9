"""What slice floors and the simpler reference cost the Evaluator: side by side on the same model and examples.

    .venv/bin/python bench/evaluator_slices.py [--images 100] [--repeats 3]

- Metric alone: the COCO metric's matching for area "all" only (what it did
  before the size floors) beside all four COCO areas (all, small, medium,
  large), on the same images and detections, in process.
- Evaluator: DetectionEvaluator's executor as the pipeline runs it, with the
  default options; with class and size floors; and with the floors and the
  box-prior reference (fitted on the train split, scored by TFMA as a third model).

The model is the zoo320 preset with random weights (no Model Zoo download):
inference cost is the real model's, and its ~100 low-score detections per
image are the metric's worst case. One untimed Evaluator run first (one-time
set-up), then the runs alternate; times are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import tensorflow as tf
from check import parse_with_quick
from common import OUT, machine

from detx.components.beam_args import local_beam_args
from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.evaluation import cocoeval_match as cem
from detx.components.evaluation.coco_metrics import PARSE_SPEC, read_examples
from detx.components.evaluator import executor
from detx.components.evaluator.options import EvaluatorOptions
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import export
from testing.data import write_examples

# Per eval image: boxes, labels, crowd flags, detection boxes, scores, classes, and its pixel count.
Image = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]
FLOORS: dict[str, Any] = {"class_ap_floors": {"*": 0.0}, "area_ap_floors": {"small": 0.0, "medium": 0.0, "large": 0.0}}
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "floors": FLOORS,
    "floors_and_reference": {**FLOORS, "simpler_reference": "box_prior", "min_margin": -1.0},
}


def _images(model_dir: str, pattern: str) -> list[Image]:
    """Per eval image: ground truth, detections and pixel areas, as the metric's combiner sees them."""
    from detx.components.data.decode import objects

    serialized = read_examples(pattern)
    out = tf.saved_model.load(model_dir).signatures["tf_example"](examples=tf.constant(serialized))
    images: list[Image] = []
    for i, raw in enumerate(serialized):
        f = tf.io.parse_single_example(raw, PARSE_SPEC)
        boxes, labels, crowd = (t.numpy() for t in objects(f))
        pixels = float(f["image/height"] * f["image/width"])
        n = int(out["num_detections"][i])
        dets = out["detection_boxes"][i, :n].numpy().astype(np.float64)
        images.append(
            (
                boxes.astype(np.float64),
                labels,
                crowd,
                dets,
                out["detection_scores"][i, :n].numpy().astype(np.float64),
                np.rint(out["detection_classes"][i, :n].numpy()).astype(np.int64),
                pixels,
            )
        )
    return images


def _match(images: list[Image], areas: tuple[str, ...]) -> float:
    """Seconds for the metric's per-image matching over `areas`, as the combiner does it."""

    def area(b: np.ndarray, pixels: float) -> np.ndarray:
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) * pixels

    start = time.perf_counter()
    for gt, labels, crowd, dets, scores, classes, pixels in images:
        gt_area, det_area = area(gt, pixels), area(dets, pixels)
        for k in (1, 2, 3):
            g, d = labels == k, classes == k
            for a in areas:
                ignore = crowd[g] | (cem.outside(gt_area[g], a) if a != "all" else False)
                outside = cem.outside(det_area[d], a) if a != "all" else None
                cem.match_image(dets[d], scores[d], gt[g], crowd[g], gt_ignore=ignore, det_outside=outside)
    return time.perf_counter() - start


def _evaluator(examples_dir: str, model_dir: str, work: str, options: dict[str, Any]) -> float:
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import artifact_utils, standard_artifacts

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "blessing"))
    examples = standard_artifacts.Examples()
    examples.uri = examples_dir
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model = standard_artifacts.Model()
    model.uri = os.path.dirname(model_dir)
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = os.path.join(work, "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(work, "blessing")
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=local_beam_args(), tmp_dir=work)
    start = time.perf_counter()
    executor.Executor(context).Do(
        {"examples": [examples], "model": [model]},
        {"evaluation": [evaluation], "blessing": [blessing]},
        {
            executor.PUSH_DESTINATION: "",
            executor.BASELINE_SETTING: "none",
            **EvaluatorOptions(min_map_50=0.0, **options).exec_properties(),
        },
    )
    return time.perf_counter() - start


def main() -> None:
    """Runs the comparison, prints a markdown table and writes bench/out/evaluator_slices.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100, help="eval images (the train split has 4x as many)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_with_quick(parser, images=20, repeats=1)
    tmp = tempfile.mkdtemp(prefix="detx-slicebench-")
    try:
        splits = {"train": 4 * args.images, "eval": args.images}
        examples_dir = write_examples(os.path.join(tmp, "examples"), sum(splits.values()), seed=5, splits=splits)
        model_config, _ = preset("zoo320")
        label_map_path = os.path.join(examples_dir, LABEL_MAP_FILENAME)
        model_dir = export.export(
            build_network(model_config, 3), model_config, label_map_path, os.path.join(tmp, "m", "Format-Serving")
        )
        images = _images(model_dir, os.path.join(examples_dir, "Split-eval", "*"))
        times: dict[str, list[float]] = {"match_all": [], "match_four_areas": [], **{k: [] for k in SETTINGS}}
        # Untimed: the first Evaluator run in a process pays for TFMA's and TensorFlow's one-time set-up.
        _evaluator(examples_dir, model_dir, os.path.join(tmp, "w"), SETTINGS["floors_and_reference"])
        for r in range(args.repeats):
            times["match_all"].append(_match(images, ("all",)))
            times["match_four_areas"].append(_match(images, ("all", *cem.SIZES)))
            for name, options in SETTINGS.items():
                times[name].append(_evaluator(examples_dir, model_dir, os.path.join(tmp, "w"), options))
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        result: dict[str, Any] = {
            "images": args.images,
            "train_images": splits["train"],
            "detections_per_image": float(np.mean([len(i[4]) for i in images])),
            "repeats": args.repeats,
            "times_s": times,
            "median_s": med,
            "ratio_match_four_areas_over_all": med["match_four_areas"] / med["match_all"],
            "ratio_floors_over_default": med["floors"] / med["default"],
            "ratio_reference_over_default": med["floors_and_reference"] / med["default"],
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d"),
        }
        rows = [
            ("COCO matching, area all only (per image, in process)", "match_all"),
            ("COCO matching, all + small + medium + large", "match_four_areas"),
            ("Evaluator, default options", "default"),
            ("Evaluator, class floors and three size floors", "floors"),
            ("Evaluator, floors and the box-prior reference", "floors_and_reference"),
        ]
        print("\n| What | Median | Repeats |\n|---|---|---|")
        for label, key in rows:
            print(f"| {label} | {med[key]:.2f} s | {', '.join(f'{t:.2f}' for t in times[key])} |")
        for label, key in [
            ("four areas / all", "ratio_match_four_areas_over_all"),
            ("floors / default", "ratio_floors_over_default"),
            ("floors + reference / default", "ratio_reference_over_default"),
        ]:
            print(f"| **ratio {label}** | **{result[key]:.2f}** | |")
        print(json.dumps(result, indent=2))
        if not args.quick:  # a quick run must not replace the full run's figures
            os.makedirs(OUT, exist_ok=True)
            with open(os.path.join(OUT, "evaluator_slices.json"), "w") as f:
                json.dump(result, f, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
