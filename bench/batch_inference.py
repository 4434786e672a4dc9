"""`detx infer`'s Beam job beside a plain Python loop over the same SavedModel and files, and its peak memory.

    .venv/bin/python bench/batch_inference.py [--images 1000] [--repeats 3] [--memory-sizes 1000,4000] [--quick]

- Loop: load the SavedModel, then for each batch of `--batch-size` files in
  sorted order: read, decode with Pillow (upright, RGB), stack, call
  `serving_default`. One thread, as a plain script would be.
- Job: `components/batch_inference/job.run` as `detx infer` runs it: Beam's
  FnApiRunner on threads, one per core (`components/beam_args.local_beam_args`),
  shards of 256, BatchElements at the same batch size, writing the shards,
  skipped.jsonl, the COCO files and the summary into a fresh folder each time.
- Both times include loading the model. Runs alternate; figures are medians.
- Memory: a child process per size runs the job once and samples the RSS of
  its whole process tree every 20 ms (psutil).

The images are `detx data synth`'s 640x480 JPEGs. The model is the `tiny`
preset with random weights, exported for the bench (no trained model or
download needed; inference cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf
from check import parse_with_quick
from common import write_summary
from PIL import Image

from detx.components.batch_inference import job
from detx.components.batch_inference.model import ModelRef
from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.beam_args import local_beam_args
from detx.components.data.images import upright_image
from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate, label_map
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import export


def write_images(folder: str, count: int) -> list[str]:
    """`count` synthetic 640x480 JPEGs (seed 0) in `folder`; returns their paths, sorted."""
    os.makedirs(folder, exist_ok=True)
    for image in generate(SynthConfig(num_images=count, seed=0)):
        with open(os.path.join(folder, image.filename), "wb") as f:
            f.write(image.jpeg)
    return sorted(os.path.join(folder, n) for n in os.listdir(folder))


def export_model(work: str) -> str:
    """The tiny preset, random weights, exported by detx."""
    config, _ = preset("tiny")
    lm_path = os.path.join(work, LABEL_MAP_FILENAME)
    label_map().write(lm_path)
    return export.export(build_network(config, 3), config, lm_path, os.path.join(work, "model"))


def plain_loop(model_dir: str, files: list[str], batch_size: int) -> float:
    """Seconds to load the model and score every file, decode + predict, one batch at a time."""
    start = time.perf_counter()
    fn = tf.saved_model.load(model_dir).signatures[export.SERVING_DEFAULT]
    for k in range(0, len(files), batch_size):
        pixels = []
        for path in files[k : k + batch_size]:
            with open(path, "rb") as f, Image.open(io.BytesIO(f.read())) as img:
                pixels.append(np.asarray(upright_image(img).convert("RGB")))
        result = fn(input_tensor=tf.constant(np.stack(pixels)))
        result["detection_boxes"].numpy()
    return time.perf_counter() - start


def beam_job(model_dir: str, folder: str, out: str, batch_size: int) -> float:
    """Seconds of one `detx infer` job into a fresh `out`."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    options = BulkInferenceOptions(batch_size=batch_size)
    job.run(folder, out, ModelRef(model_dir, None), options, local_beam_args(), echo=lambda _: None)
    return time.perf_counter() - start


class _TreeRss(threading.Thread):
    """Samples the resident memory of this process and its children every 20 ms; keeps the maximum."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self._process = psutil.Process()
        self._stop_event = threading.Event()
        self.peak_mb = 0.0

    def current_mb(self) -> float:
        import psutil

        total = 0
        for p in [self._process, *self._process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a child that just ended
                total += p.memory_info().rss
        return total / 2**20

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak_mb = max(self.peak_mb, self.current_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak_mb


def child_memory(model_dir: str, folder: str, batch_size: int) -> None:
    """Child process: one job; prints its process tree's RSS before and at peak as JSON."""
    import apache_beam  # noqa: F401  (imports happen before sampling starts)

    sampler = _TreeRss()
    before = sampler.current_mb()
    sampler.start()
    with tempfile.TemporaryDirectory() as out:
        seconds = beam_job(model_dir, folder, out, batch_size)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": sampler.stop(), "rss_before_mb": before}))


def main() -> None:
    """Runs the comparison and the memory runs; prints a markdown table and the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--memory-sizes", default="1000,4000", help="image counts of the memory runs ('' for none)")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "FOLDER", "BATCH"), help=argparse.SUPPRESS)
    args = parse_with_quick(parser, images=96, repeats=1, memory_sizes="")
    if args.child:
        child_memory(args.child[0], args.child[1], int(args.child[2]))
        return
    work = tempfile.mkdtemp(prefix="detx-bench-infer-")
    try:
        model_dir = export_model(work)
        sizes = [int(s) for s in args.memory_sizes.split(",") if s]
        largest = max([args.images, *sizes])
        all_files = write_images(os.path.join(work, "all"), largest)
        folders = {}
        for n in sorted({args.images, *sizes}):  # each size its own folder of the first n images
            folders[n] = os.path.join(work, f"images-{n}")
            os.makedirs(folders[n])
            for path in all_files[:n]:
                os.link(path, os.path.join(folders[n], os.path.basename(path)))
        files = sorted(os.path.join(folders[args.images], f) for f in os.listdir(folders[args.images]))
        load_before = os.getloadavg()[0]
        loop_s, job_s = [], []
        for _ in range(args.repeats):
            loop_s.append(plain_loop(model_dir, files, args.batch_size))
            job_s.append(beam_job(model_dir, folders[args.images], os.path.join(work, "out"), args.batch_size))
        loop_rate = args.images / statistics.median(loop_s)
        job_rate = args.images / statistics.median(job_s)
        memory = []
        for n in sizes:
            child = [sys.executable, os.path.abspath(__file__), "--child", model_dir, folders[n], str(args.batch_size)]
            result = subprocess.run(child, capture_output=True, text=True, check=True)
            memory.append({"images": n, **json.loads(result.stdout.strip().splitlines()[-1])})
        summary: dict[str, object] = {
            "images": args.images,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "loop_seconds": loop_s,
            "job_seconds": job_s,
            "loop_images_per_second": loop_rate,
            "job_images_per_second": job_rate,
            "ratio": job_rate / loop_rate,
            "memory": memory,
            "load_average_before_after": [load_before, os.getloadavg()[0]],
        }
        if len(memory) >= 2:
            summary["memory_growth"] = memory[-1]["peak_rss_mb"] / memory[0]["peak_rss_mb"] - 1
        print("| What | Result | Note |\n|---|---|---|")
        print(
            f"| plain loop: decode + serving_default, batch {args.batch_size} | {loop_rate:.1f} images/s | "
            f"median of {args.repeats} ({', '.join(f'{s:.2f}' for s in loop_s)} s) |"
        )
        print(
            f"| detx infer's Beam job (FnApiRunner, threads) | {job_rate:.1f} images/s | "
            f"median of {args.repeats} ({', '.join(f'{s:.2f}' for s in job_s)} s) |"
        )
        print(f"| **ratio job / loop** | **{job_rate / loop_rate:.2f}** | goal >= 0.9 |")
        for m in memory:
            print(
                f"| peak RSS of the job's process tree, {m['images']} images | {m['peak_rss_mb']:.0f} MB "
                f"(before: {m['rss_before_mb']:.0f} MB) | run {m['seconds']:.1f} s |"
            )
        if "memory_growth" in summary:
            print(
                f"| **peak RSS growth {sizes[0]} -> {sizes[-1]} images** | **{summary['memory_growth']:+.1%}** "
                "| goal within 20% |"
            )
        if args.quick:  # bench-check reads the summary; a quick run must not replace the full run's figures
            print(json.dumps(summary))
        else:
            write_summary("batch_inference", summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
