"""What a `detx ct check` costs next to the pipeline's own data steps, on the same new span.

    .venv/bin/python bench/ct_check_cost.py [--images 1000] [--repeats 3]

A check that runs every few hours must be cheap: it summarises only the new
spans, in-process (ingestion's checks and statistics features, TFDV's
in-memory generator), instead of running ExampleGen and StatisticsGen. This
measures, interleaved per repeat so that machine noise hits both alike:

- `check`: `detx.pipeline.ct.check.check` on a span root whose newest span is new
  to the served version (statistics of that span, TFDV drift against the
  version's training statistics, every other signal);
- `data steps`: DetectionExampleGen + DetectionSchemaGen + StatisticsGen with
  LocalDagRunner (cache off, the local Beam default) on the same span.

Goal: the check takes at most half the data steps' time (medians).
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

from check import parse_with_quick

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def span_root(num_images: int, work: str) -> str:
    """A span root: span 1 (what production saw) and span 2 (new, darker), `num_images` each."""
    from detx.components.data import spans
    from detx.components.data.synth import SynthConfig, write_dataset

    root = os.path.join(work, "spans")
    for span, config in (
        (1, SynthConfig(num_images=num_images, seed=1)),
        (2, SynthConfig(num_images=num_images, seed=2, first_id=num_images + 1, brightness=0.6)),
    ):
        spans.add_span(root, write_dataset(os.path.join(work, f"d{span}"), config, "coco").out_dir)
    return root


def served_version(root: str, work: str) -> str:
    """A push destination whose version 1 was trained on span 1 (its statistics stored as the Pusher does)."""
    from detx.components.data.ingest_options import IngestOptions
    from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore
    from detx.pipeline.ct import stats

    model = os.path.join(work, "model")
    os.makedirs(os.path.join(model, "variables"))
    with open(os.path.join(model, "saved_model.pb"), "wb") as f:
        f.write(b"stand-in: the check never loads the model")
    reference = stats.span_statistics(root, [1], IngestOptions(span_window=1)).statistics
    dest = os.path.join(work, "models", "detx")
    ModelStore(dest).push(
        model,
        {"data": {"source": root, "spans": [1]}},
        extra_files={TRAIN_STATS_FILENAME: reference.SerializeToString()},
    )
    return dest


def time_check(root: str, dest: str) -> tuple[float, bool]:
    from detx.components.data.ingest_options import IngestOptions
    from detx.pipeline.config import ContinuousTrainingConfig
    from detx.pipeline.ct.check import check

    start = time.perf_counter()
    decision = check(root, IngestOptions(span_window=1), dest, ContinuousTrainingConfig())
    return time.perf_counter() - start, decision.retrain


def time_data_steps(root: str, project: str) -> float:
    from detx.components.data.spans import span_dir

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from beam_modes import run_data_steps  # the same three steps, the local default mode

    return run_data_steps(span_dir(root, 2), project, "multi_threading")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_with_quick(parser, images=200, repeats=1)
    with tempfile.TemporaryDirectory() as work:
        root = span_root(args.images, work)
        dest = served_version(root, work)
        checks, steps = [], []
        for repeat in range(args.repeats):
            seconds, retrain = time_check(root, dest)
            assert retrain, "the darker span must trigger"
            checks.append(seconds)
            steps.append(time_data_steps(root, os.path.join(work, f"project-{repeat}")))
            print(f"repeat {repeat + 1}: check {checks[-1]:.1f} s, data steps {steps[-1]:.1f} s", flush=True)
    result = {
        "images": args.images,
        "check_s": round(statistics.median(checks), 2),
        "data_steps_s": round(statistics.median(steps), 2),
        "ratio": round(statistics.median(checks) / statistics.median(steps), 3),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
