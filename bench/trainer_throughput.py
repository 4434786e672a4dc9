"""Training throughput of both presets, the input pipeline's cost, and exported-model inference speed.

    .venv/bin/python bench/trainer_throughput.py [--steps 20] [--repeats 3] [--zoo-batch 8]

- Training images/s per preset, reading real GZIP TFRecords through the full
  input pipeline (decode, augmentation, target assignment).
- Input pipeline cost: steps/s on real TFRecords beside steps/s on the same
  batches cached in memory, alternating in one process, medians of the repeats.
- Inference: the exported zoo320 `serving_default` at batch 1 and 8, on
  640x480 synthetic images.

Weights are random (no Model Zoo download here); speed does not depend on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from common import OUT, machine

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import data, export, train
from testing.data import write_examples


class _StepTimer(keras.callbacks.Callback):
    """Records when each training step ends."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: object = None) -> None:
        self.times.append(time.perf_counter())


def _steps_per_s(model: train.SSDTrainingModel, dataset: tf.data.Dataset, steps: int, skip: int = 3) -> float:
    """Steady-state steps/s: the first `skip` steps (tracing, pipeline start-up, buffers) are not timed."""
    timer = _StepTimer()
    model.fit(dataset, steps_per_epoch=steps + skip, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
    return (len(timer.times) - skip) / (timer.times[-1] - timer.times[skip - 1])


def bench_training(name: str, examples: str, steps: int, repeats: int, batch: int | None) -> dict[str, object]:
    """Steps/s of one preset on real and on cached batches."""
    model_config, train_config = preset(name)
    if batch:
        train_config = dataclasses.replace(train_config, batch_size=batch)
    pattern = os.path.join(examples, "Split-train", "*")
    network = build_network(model_config, 3)
    model = train.SSDTrainingModel(network, model_config)
    size = model_config.image_size
    model(tf.zeros([1, size, size, 3]))
    model.compile(optimizer=train.optimizer(train_config), jit_compile=False)
    real = data.make_dataset(pattern, model_config, train_config)
    cached = real.take(steps + 3).cache().repeat()
    for _ in cached.take(steps + 3):  # fill the cache outside the timing
        pass
    real_s, cached_s = [], []
    for _ in range(repeats):
        real_s.append(_steps_per_s(model, real, steps))
        cached_s.append(_steps_per_s(model, cached, steps))
        print(f"{name}: real {real_s[-1]:.3f} steps/s, cached {cached_s[-1]:.3f} steps/s", file=sys.stderr)
    real_rate, cached_rate = statistics.median(real_s), statistics.median(cached_s)
    return {
        "preset": name,
        "image_size": size,
        "batch": train_config.batch_size,
        "real_steps_per_s": real_s,
        "cached_steps_per_s": cached_s,
        "images_per_s": real_rate * train_config.batch_size,
        "input_ratio": real_rate / cached_rate,
    }


def bench_inference(examples: str, repeats: int, n_images: int = 16) -> dict[str, object]:
    """Images/s of the exported zoo320 serving_default at batch 1 and 8."""
    model_config, _ = preset("zoo320")
    network = build_network(model_config, 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export(network, model_config, os.path.join(examples, LABEL_MAP_FILENAME), tmp + "/m")
        serve = export.load(path).signatures["serving_default"]
        images = np.stack([tf.io.decode_jpeg(i.jpeg).numpy() for i in generate(SynthConfig(n_images, seed=4))])
        result: dict[str, object] = {}
        for batch in (1, 8):
            serve(input_tensor=tf.constant(images[:batch]))  # warm up
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                for i in range(0, n_images, batch):
                    serve(input_tensor=tf.constant(images[i : i + batch]))
                rates.append(n_images / (time.perf_counter() - start))
            result[f"batch_{batch}_images_per_s"] = statistics.median(rates)
    return result


def main() -> None:
    """Runs the benchmarks and prints a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--zoo-batch", type=int, default=8, help="zoo320's batch on CPU (the Zoo's 128 is for TPUs)")
    parser.add_argument("--tiny-only", action="store_true", help="only the tiny preset's training figures")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        examples = write_examples(os.path.join(tmp, "examples"), 200, seed=0)
        tiny = bench_training("tiny", examples, args.steps, args.repeats, None)
        if args.tiny_only:
            print(f"| tiny | {tiny['images_per_s']:.1f} training images/s | input ratio {tiny['input_ratio']:.2f} |")
            return
        zoo = bench_training("zoo320", examples, max(args.steps // 4, 3), args.repeats, args.zoo_batch)
        inference = bench_inference(examples, args.repeats)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{machine()}, GPUs: {len(tf.config.list_physical_devices('GPU'))}",
        "training": [tiny, zoo],
        "inference_zoo320": inference,
    }
    with open(os.path.join(OUT, "trainer_throughput.json"), "w") as f:
        json.dump(result, f, indent=1)
    for r in (tiny, zoo):
        print(
            f"| {r['preset']} ({r['image_size']} px, batch {r['batch']}) | {r['images_per_s']:.1f} training images/s "
            f"| input pipeline ratio real/cached {r['input_ratio']:.2f} |"
        )
    print(
        f"| zoo320 exported serving_default | batch 1: {inference['batch_1_images_per_s']:.1f} images/s, "
        f"batch 8: {inference['batch_8_images_per_s']:.1f} images/s | |"
    )


if __name__ == "__main__":
    main()
