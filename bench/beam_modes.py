"""Beam's local engine modes side by side on the data steps: processes, threads, in memory.

    .venv/bin/python bench/beam_modes.py [--images 1000] [--repeats 3]

Runs DetectionExampleGen -> DetectionSchemaGen -> StatisticsGen with
LocalDagRunner (cache off) on the same synthetic COCO dataset once per mode
per repeat, the modes interleaved so that machine noise hits all alike, and
reports each mode's median wall time and its ratio to multi-processing (the
local default). Every run starts Beam's workers afresh, so the processes mode
pays its workers' start-up (a Python import of TFX and TensorFlow each) in
every repeat, as a real run does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

MODES = ("multi_processing", "multi_threading", "in_memory")


def dataset(num_images: int) -> str:
    """The synthetic COCO dataset bench/example_gen_throughput.py caches (made here when missing)."""
    import shutil

    from detx.components.data.synth import SynthConfig, write_dataset

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", f"coco-{num_images}")
    if not os.path.exists(os.path.join(path, "annotations.json")):
        shutil.rmtree(path, ignore_errors=True)
        write_dataset(path, SynthConfig(num_images=num_images, seed=0), "coco")
    return path


def run_data_steps(data_dir: str, project: str, mode: str) -> float:
    """Runs the three data steps once in `mode`; returns wall seconds."""
    from tfx import v1 as tfx

    from detx.components.beam_args import local_beam_args
    from detx.components.data.ingest_options import IngestOptions
    from detx.components.example_gen.component import DetectionExampleGen
    from detx.components.schema_gen.component import DetectionSchemaGen

    args = [a for a in local_beam_args() if not a.startswith(("--direct_running_mode", "--direct_num_workers"))]
    args += [f"--direct_running_mode={mode}", f"--direct_num_workers={1 if mode == 'in_memory' else 0}"]
    example_gen = DetectionExampleGen(data_dir, IngestOptions("coco"), {"train": 4, "eval": 1})
    schema_gen = DetectionSchemaGen(examples=example_gen.outputs["examples"])
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="bench",
        pipeline_root=os.path.join(project, "root"),
        components=[example_gen, schema_gen, statistics_gen],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(project, "m.sqlite")
        ),
        beam_pipeline_args=args,
    )
    start = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return time.perf_counter() - start


def main() -> None:
    """Runs the comparison and prints one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data_dir = dataset(args.images)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(args.repeats):
            for mode in MODES:
                seconds = run_data_steps(data_dir, os.path.join(work, f"{mode}-{repeat}"), mode)
                times[mode].append(seconds)
                print(f"repeat {repeat + 1}: {mode} {seconds:.1f} s", file=sys.stderr)
    medians = {m: statistics.median(t) for m, t in times.items()}
    print(
        json.dumps(
            {
                "images": args.images,
                "repeats": args.repeats,
                "median_s": {m: round(v, 1) for m, v in medians.items()},
                "ratio_to_multi_processing": {m: round(v / medians["multi_processing"], 2) for m, v in medians.items()},
                "cpus": os.cpu_count(),
                "machine": platform.platform(),
                "date": time.strftime("%Y-%m-%d"),
            }
        )
    )


if __name__ == "__main__":
    main()
