"""TFLite models beside the SavedModel they come from: file size, CPU latency at batch 1 and mAP@0.5, in one run.

    .venv/bin/python bench/tflite.py [--repeats 9] [--calls 20] [--trained DIR --examples DIR]

Size and speed: the zoo320 preset with random weights (speed and size do not
depend on them), 3 classes, exported by detx's export (folded batch norm, no
in-graph batching, so a lone call never waits for company) and converted by
`components/tflite` to float32, float16 and int8 (calibrated on 32 synthetic
images), per-class NMS (the default), plus int8 with the class-agnostic fast
NMS. Sizes: each .tflite file (with its metadata and labels) / the SavedModel's
`variables/`. Latency: the SavedModel's `serving_default` in TensorFlow (a
320x320 uint8 image: cast, normalize, resize, network, NMS) beside TFLite's
interpreter with 2 threads, and with 1 (`set_tensor` + `invoke` of the same
image, already normalized as the app does it), taking turns in every repeat;
medians of the repeats' ms per call.

Accuracy: the tiny preset trained 800 steps on 640 synthetic images (the
recipe of `trained_project` in tests/conftest.py; trained here unless
--trained gives a SavedModel and --examples its ExampleGen-layout examples,
e.g. from `testing.data.write_examples(dir, 800, seed=3,
min_size=48)`), COCO mAP@0.5 on its 160 eval images with detx's own metric
code, int8 calibrated on 100 train images. Besides the default models: the fast
NMS, per-class NMS run on 2 threads (TFLite's kernel then skips class 3), and
the raw unclipped boxes of the op.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from bn_fold import alternate
from common import write_summary

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate, label_map
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.tflite import inputs
from detx.components.tflite.build import variables_bytes
from detx.components.tflite.convert import convert
from detx.components.tflite.evaluate import saved_model_metrics, tflite_metrics
from detx.components.tflite.metadata import ModelInfo, with_metadata
from detx.components.tflite.postprocess_op import PostProcessSettings
from detx.components.tflite.source import Detector, load_detector
from detx.components.trainer import data, export, train
from testing.data import write_examples

# Name -> (kind, per-class NMS).
MODELS = {
    "float32": ("float32", True),
    "float16": ("float16", True),
    "int8": ("int8", True),
    "int8_fast_nms": ("int8", False),
}


def tflite_model(detector: Detector, kind: str, regular: bool, sample: np.ndarray) -> bytes:
    settings = PostProcessSettings.from_config(detector.config, detector.label_map.num_classes, regular)
    model = convert(detector, kind, settings, sample if kind == "int8" else None)
    return with_metadata(model, ModelInfo("bench", kind), detector.label_map)


def synthetic_sample(size: int, n: int) -> np.ndarray:
    return np.stack([inputs.pixels(i.jpeg, size) for i in generate(SynthConfig(num_images=n, seed=21))])


def invoker(model: bytes, image: np.ndarray, threads: int) -> Callable[[], object]:
    """One batch-1 inference (input already in the model's type) with TFLite's interpreter."""
    interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = image[None]
    if detail["dtype"] == np.uint8:
        scale, zero = detail["quantization"]
        x = np.clip(np.round(x / scale + zero), 0, 255).astype(np.uint8)

    def run() -> None:
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()

    return run


def size_and_speed(tmp: str, repeats: int, calls: int) -> dict[str, Any]:
    """zoo320, random weights: file sizes and batch-1 latencies."""
    config, _ = preset("zoo320")
    lm_path = os.path.join(tmp, LABEL_MAP_FILENAME)
    label_map().write(lm_path)
    path = export.export(build_network(config, 3), config, lm_path, os.path.join(tmp, "zoo320"), batching=None)
    detector = load_detector(path)
    sample = synthetic_sample(config.image_size, 32)
    models = {name: tflite_model(detector, kind, regular, sample) for name, (kind, regular) in MODELS.items()}
    weights = variables_bytes(path)
    sizes = {name: len(m) for name, m in models.items()}

    image_u8 = tf.constant(
        np.random.default_rng(0).integers(0, 256, (1, config.image_size, config.image_size, 3), np.uint8)
    )
    image = inputs.normalize(image_u8.numpy(), config.image_size)[0]
    serving = detector.saved_model.signatures[export.SERVING_DEFAULT]
    fns: dict[str, Callable[[], object]] = {"saved_model": functools.partial(serving, input_tensor=image_u8)}
    fns.update({f"tflite_{name}": invoker(m, image, 2) for name, m in models.items()})
    # One thread too: what detx runs per-class NMS with (the kernel skips a class on more), and what a
    # machine busier than its cores gets (TFLite's worker threads wait for each other's time slices).
    fns.update({f"tflite_{name}_1_thread": invoker(models[name], image, 1) for name in ("float32", "float16", "int8")})
    runs = alternate(fns, repeats, calls, "zoo320 batch 1")
    ms = {name: float(np.median(v)) for name, v in runs.items()}
    return {
        "variables_bytes": weights,
        "tflite_bytes": sizes,
        "size_ratio": {name: size / weights for name, size in sizes.items()},
        "ms": ms,
        "latency_ratio": {name: v / ms["saved_model"] for name, v in ms.items() if name != "saved_model"},
        "runs": runs,
    }


def trained_tiny(tmp: str, steps: int) -> tuple[str, str]:
    """The trained_project recipe (tests/conftest.py) without the pipeline: (SavedModel, examples)."""
    examples = write_examples(os.path.join(tmp, "examples"), 800, seed=3, min_size=48)
    model_config, train_config = preset("tiny")
    train_config = dataclasses.replace(train_config, train_steps=steps)
    pattern = os.path.join(examples, "Split-train", "*")
    result = train.train(
        lambda b: data.make_dataset(pattern, model_config, train_config, batch_size=b),
        model_config,
        train_config,
        3,
        os.path.join(tmp, "run"),
    )
    path = export.export(
        result.network, model_config, os.path.join(examples, LABEL_MAP_FILENAME), os.path.join(tmp, "tiny")
    )
    return path, examples


def accuracy(saved_model: str, examples: str) -> dict[str, Any]:
    """mAP@0.5 of the SavedModel and of its TFLite models on the eval split."""
    detector = load_detector(saved_model)
    k = detector.label_map.num_classes
    evaluation = inputs.serialized_examples(inputs.split_patterns(examples, "eval"))
    sample = inputs.representative_images(examples, detector.config.image_size, 100)
    saved = saved_model_metrics(detector.saved_model, evaluation, k)
    models = {name: tflite_model(detector, kind, regular, sample) for name, (kind, regular) in MODELS.items()}
    models["float32_fast_nms"] = tflite_model(detector, "float32", False, sample)
    rows: dict[str, float] = {"saved_model": saved.map_50}
    for name, model in models.items():
        rows[name] = tflite_metrics(model, evaluation, k).map_50
        print(f"{name}: mAP@0.5 {rows[name]:.4f}", flush=True)
    rows["float32_2_threads"] = tflite_metrics(models["float32"], evaluation, k, threads_as_given=True).map_50
    rows["float32_unclipped"] = tflite_metrics(models["float32"], evaluation, k, clip_to_image=False).map_50
    return {
        "eval_images": len(evaluation),
        "calibration_images": len(sample),
        "map_50": rows,
        "map_50_drop": {name: saved.map_50 - v for name, v in rows.items() if name != "saved_model"},
    }


def main() -> None:
    """Runs both parts and writes bench/out/tflite.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20, help="calls per latency measurement")
    parser.add_argument("--trained", help="a trained tiny SavedModel (else one is trained here)")
    parser.add_argument("--examples", help="its examples (ExampleGen layout), with --trained")
    parser.add_argument("--train-steps", type=int, default=800)
    args = parser.parse_args()
    if bool(args.trained) != bool(args.examples):
        parser.error("--trained and --examples go together")
    tmp = tempfile.mkdtemp(prefix="detx-tflite-bench-")
    try:
        load_before = os.getloadavg()[0]
        summary: dict[str, Any] = {"zoo320": size_and_speed(tmp, args.repeats, args.calls)}
        saved_model, examples = (args.trained, args.examples) if args.trained else trained_tiny(tmp, args.train_steps)
        summary["tiny_trained"] = accuracy(saved_model, examples)
        summary.update(
            repeats=args.repeats,
            calls=args.calls,
            trained_here=not args.trained,
            load_average_before_after=[load_before, os.getloadavg()[0]],
        )
        write_summary("tflite", summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
