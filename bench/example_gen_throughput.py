"""ExampleGen throughput beside a plain Python loop, and its peak memory at two dataset sizes.

    .venv/bin/python bench/example_gen_throughput.py [--images 1000] [--repeats 3] [--memory-sizes 1000,4000]

Throughput: DetectionExampleGen run by LocalDagRunner (its Beam DirectRunner
pipeline, driver and ML Metadata bookkeeping included) against a plain loop
that does the same work on the same files: read the COCO annotations, check
and convert every image with the same `build_example`, and write the same
tf.Examples to a GZIP TFRecord. Both run alternately in one process, and the
medians of the repeats are compared, so machine noise hits both alike.

Memory: the ExampleGen alone, each size in a fresh process; a thread samples
the process's RSS every 20 ms during the run (ru_maxrss would also count the
import-time peak of TensorFlow). Streaming ingestion keeps it flat as the
dataset grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from check import parse_with_quick
from common import OUT, machine


def dataset(num_images: int) -> str:
    """A cached synthetic COCO dataset of `num_images` 640x480 JPEGs."""
    from detx.components.data.synth import SynthConfig, write_dataset

    path = os.path.join(OUT, f"coco-{num_images}")
    if not os.path.exists(os.path.join(path, "annotations.json")):
        shutil.rmtree(path, ignore_errors=True)
        write_dataset(path, SynthConfig(num_images=num_images, seed=0), "coco")
    return path


def run_example_gen(data_dir: str, project: str) -> float:
    """Runs DetectionExampleGen alone with LocalDagRunner; returns wall seconds."""
    from tfx import v1 as tfx

    from detx.components.beam_args import local_beam_args
    from detx.components.data.ingest_options import IngestOptions
    from detx.components.example_gen.component import DetectionExampleGen

    example_gen = DetectionExampleGen(data_dir, IngestOptions("coco"), {"train": 4, "eval": 1})
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="bench",
        pipeline_root=os.path.join(project, "root"),
        components=[example_gen],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(project, "m.sqlite")
        ),
        beam_pipeline_args=local_beam_args(),
    )
    start = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return time.perf_counter() - start


def run_plain_loop(data_dir: str, out_path: str) -> float:
    """The same checks and tf.Examples, written by a plain loop; returns wall seconds."""
    import tensorflow as tf

    from detx.components.data.coco import scan_coco
    from detx.components.data.records import Converted, DataLimits, build_example

    start = time.perf_counter()
    scan = scan_coco(os.path.join(data_dir, "annotations.json"), os.path.join(data_dir, "images"))
    with tf.io.TFRecordWriter(out_path, options="GZIP") as writer:
        for record in scan.records:
            result = build_example(record, scan.resolve, scan.label_map, DataLimits())
            if isinstance(result, Converted):
                writer.write(result.example.SerializeToString())
    return time.perf_counter() - start


class _RssSampler(threading.Thread):
    """Samples this process's resident memory until stopped; keeps the maximum."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self._process = psutil.Process()
        self._stop_event = threading.Event()
        self.peak_mb = 0.0

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak_mb


def child_memory(num_images: int) -> None:
    """Child process: one ExampleGen run; prints its peak RSS during the run as JSON."""
    import psutil

    data_dir = dataset(num_images)
    import tfx.v1  # noqa: F401  (imports happen before sampling starts)

    before = psutil.Process().memory_info().rss / 2**20
    sampler = _RssSampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as project:
        seconds = run_example_gen(data_dir, project)
    peak = sampler.stop()
    result = {
        "images": num_images,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result))


def main() -> None:
    """Runs the benchmark and prints a Markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-sizes", default="1000,4000")
    parser.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    args = parse_with_quick(parser, images=200, repeats=1, memory_sizes="")
    if args.child_memory:
        child_memory(args.child_memory)
        return

    os.makedirs(OUT, exist_ok=True)
    data_dir = dataset(args.images)
    loop_s, gen_s = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            loop_s.append(run_plain_loop(data_dir, os.path.join(tmp, "out.tfrecord.gz")))
        with tempfile.TemporaryDirectory() as project:
            gen_s.append(run_example_gen(data_dir, project))
        print(f"repeat {i + 1}: loop {loop_s[-1]:.2f} s, ExampleGen {gen_s[-1]:.2f} s", file=sys.stderr)
    loop_rate = args.images / statistics.median(loop_s)
    gen_rate = args.images / statistics.median(gen_s)

    memory = []
    for size in (int(s) for s in args.memory_sizes.split(",") if s):
        dataset(size)
        out = subprocess.run(
            [sys.executable, __file__, "--child-memory", str(size)], check=True, capture_output=True, text=True
        ).stdout
        memory.append(json.loads(out.strip().splitlines()[-1]))

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "images": args.images,
        "loop_seconds": loop_s,
        "example_gen_seconds": gen_s,
        "loop_images_per_s": loop_rate,
        "example_gen_images_per_s": gen_rate,
        "ratio": gen_rate / loop_rate,
        "memory": memory,
    }
    if args.quick:  # bench-check reads the summary; a quick run must not replace the full run's figures
        print(json.dumps(result))
        return
    with open(os.path.join(OUT, "example_gen_throughput.json"), "w") as f:
        json.dump(result, f, indent=1)
    ratio = gen_rate / loop_rate
    print(f"| plain loop | {loop_rate:.1f} images/s | median of {args.repeats} |")
    print(f"| DetectionExampleGen (LocalDagRunner, DirectRunner) | {gen_rate:.1f} images/s | ratio {ratio:.2f} |")
    for m in memory:
        print(
            f"| peak RSS during the run, {m['images']} images | {m['peak_rss_mb']:.0f} MB "
            f"(before: {m['rss_before_mb']:.0f} MB) | run {m['seconds']:.1f} s |"
        )
    if len(memory) == 2:
        growth = memory[1]["peak_rss_mb"] / memory[0]["peak_rss_mb"] - 1
        print(f"| peak RSS growth {memory[0]['images']} -> {memory[1]['images']} | {growth:+.1%} | |")


if __name__ == "__main__":
    main()
