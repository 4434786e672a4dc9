"""The Evaluator (TFMA on Beam) beside a plain in-process evaluation loop: same model, same eval examples.

    .venv/bin/python bench/evaluator_vs_loop.py [--images 200] [--repeats 3] [--builtin-images 0]

- Loop: load the SavedModel, run its `tf_example` signature over the eval
  split in batches of 8, score with pycocotools (`coco_metrics.evaluate`).
- Evaluator: DetectionEvaluator's executor as the pipeline runs it (TFMA's
  ExtractEvaluateAndWriteResults on Beam's FnApiRunner, two slicing specs,
  blessing, reports), without and with a baseline model (the baseline case is
  compared with a loop that evaluates both models).
- Optional (`--builtin-images N`): TFMA's own COCOMeanAveragePrecision (at
  .50:.95 and at .5, num_thresholds 100) and COCOMeanAverageRecall on N
  images, the alternative the detx metric replaces.

The model is the zoo320 preset with random weights (no Model Zoo download
here): inference cost is the real model's; its ~100 low-score detections per
image are the metric's worst case. Runs alternate; times are medians.
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

import tensorflow as tf
from check import parse_with_quick
from common import OUT, machine

from detx.components.beam_args import local_beam_args
from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.evaluator import executor
from detx.components.evaluator.options import EvaluatorOptions
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import export
from testing.data import write_examples


def _loop(model_dirs: list[str], pattern: str) -> float:
    start = time.perf_counter()
    examples = read_examples(pattern)
    for model_dir in model_dirs:
        evaluate(tf.saved_model.load(model_dir).signatures["tf_example"], examples, num_classes=3)
    return time.perf_counter() - start


def _evaluator(examples_dir: str, model_dir: str, work: str, push_destination: str) -> float:
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import artifact_utils, standard_artifacts

    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "blessing"))
    examples = standard_artifacts.Examples()
    examples.uri = examples_dir
    examples.split_names = artifact_utils.encode_split_names(["eval"])
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
            executor.PUSH_DESTINATION: push_destination,
            executor.BASELINE_SETTING: "auto" if push_destination else "none",
            **EvaluatorOptions(min_map_50=0.0).exec_properties(),
        },
    )
    return time.perf_counter() - start


def _tfma_builtin(model_dir: str, pattern: str, work: str) -> float:
    import apache_beam as beam
    import tensorflow_model_analysis as tfma
    from tfx_bsl.public import tfxio

    from detx.components.data import features as F

    labels = [F.YMIN, F.XMIN, F.YMAX, F.XMAX, F.LABEL]
    predictions = ["detection_boxes", "detection_classes", "detection_scores"]

    def metric(class_name: str, name: str, **extra: Any) -> Any:
        config = {
            "class_ids": [1, 2, 3],
            "max_num_detections": 100,
            "labels_to_stack": labels,
            "predictions_to_stack": predictions,
            "num_detections_key": "num_detections",
            "name": name,
            **extra,
        }
        return tfma.MetricConfig(class_name=class_name, config=json.dumps(config))

    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="tf_example")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    metric("COCOMeanAveragePrecision", "map", num_thresholds=100),
                    metric("COCOMeanAveragePrecision", "map_50", iou_thresholds=[0.5], num_thresholds=100),
                    metric("COCOMeanAverageRecall", "ar_100"),
                ]
            )
        ],
    )
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    model = tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=config)
    with beam.Pipeline(argv=local_beam_args()) as p:
        _ = (
            p
            | tfxio.TFExampleRecord(pattern, raw_record_column_name=tfma.ARROW_INPUT_COLUMN).BeamSource()
            | tfma.ExtractEvaluateAndWriteResults(eval_shared_model=model, eval_config=config, output_path=work)
        )
    return time.perf_counter() - start


def main() -> None:
    """Runs the comparison and writes bench/out/evaluator_vs_loop.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--builtin-images", type=int, default=0, help="also time TFMA's own COCO metrics")
    args = parse_with_quick(parser, images=40, repeats=1)
    tmp = tempfile.mkdtemp(prefix="detx-evalbench-")
    try:
        examples_dir = write_examples(os.path.join(tmp, "examples"), args.images, seed=5, splits={"eval": args.images})
        model_config, _ = preset("zoo320")
        label_map_path = os.path.join(examples_dir, LABEL_MAP_FILENAME)
        candidate = export.export(
            build_network(model_config, 3), model_config, label_map_path, os.path.join(tmp, "m1", "Format-Serving")
        )
        baseline = export.export(
            build_network(model_config, 3), model_config, label_map_path, os.path.join(tmp, "m2", "Format-Serving")
        )
        dest = os.path.join(tmp, "dest")
        ModelStore(dest).push(baseline, {})
        pattern = os.path.join(examples_dir, "Split-eval", "*")
        times: dict[str, list[float]] = {"loop": [], "evaluator": [], "loop_two_models": [], "evaluator_baseline": []}
        for r in range(args.repeats):
            times["loop"].append(_loop([candidate], pattern))
            times["evaluator"].append(_evaluator(examples_dir, candidate, os.path.join(tmp, "w"), ""))
            times["loop_two_models"].append(_loop([candidate, ModelStore(dest).path(1)], pattern))
            times["evaluator_baseline"].append(_evaluator(examples_dir, candidate, os.path.join(tmp, "w"), dest))
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        result: dict[str, Any] = {
            "images": args.images,
            "repeats": args.repeats,
            "times_s": times,
            "median_s": med,
            "ratio_evaluator_over_loop": med["evaluator"] / med["loop"],
            "ratio_with_baseline": med["evaluator_baseline"] / med["loop_two_models"],
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d"),
        }
        if args.builtin_images:
            small = write_examples(
                os.path.join(tmp, "small"), args.builtin_images, seed=5, splits={"eval": args.builtin_images}
            )
            small_pattern = os.path.join(small, "Split-eval", "*")
            result["builtin_images"] = args.builtin_images
            result["builtin_tfma_s"] = _tfma_builtin(candidate, small_pattern, os.path.join(tmp, "builtin"))
            result["builtin_detx_evaluator_s"] = _evaluator(small, candidate, os.path.join(tmp, "w2"), "")
            result["builtin_loop_s"] = _loop([candidate], small_pattern)
        print(json.dumps(result, indent=2))
        if not args.quick:  # a quick run must not replace the full run's figures
            os.makedirs(OUT, exist_ok=True)
            with open(os.path.join(OUT, "evaluator_vs_loop.json"), "w") as f:
                json.dump(result, f, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
