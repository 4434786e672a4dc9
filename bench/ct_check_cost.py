"""What a `detx ct check` costs next to the pipeline's own data steps, on the same new span.

    .venv/bin/python bench/ct_check_cost.py [--images 1000] [--repeats 3]

A check that runs every few hours must be cheap: it summarises only the new
spans, in-process (ingestion's checks and statistics features, TFDV's
in-memory generator), instead of running ExampleGen and StatisticsGen. This
measures, interleaved per repeat so that machine noise hits both alike:

- `check`: `detx.pipeline.ct.check.check` on a span root whose newest span is new
  to the served version (statistics of that span, TFDV drift against the
  version's training statistics, every other signal);
- `check + staleness, first`: the check as `detx ct check` runs it
  (`QualityOptions`): also span 2's eval split converted with its images and
  the served version (the `tiny` preset, random weights: the cost does not
  depend on how well it detects) loaded and scored with COCO mAP, into a
  fresh state directory;
- `check + staleness, cached`: the same check again: the (version, span) point
  comes from `ct_quality.json`, nothing is scored;
- `data steps`: DetectionExampleGen + DetectionSchemaGen + StatisticsGen with
  LocalDagRunner (cache off, the local Beam default) on the same span.

Goal: the check takes at most half the data steps' time (medians), the
cached staleness check too; the first staleness check of a span is reported.
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


def tiny_model(work: str) -> str:
    """The `tiny` preset exported with random weights and the synthetic label map (a real, loadable detector)."""
    import keras

    from detx.components.data.synth import label_map
    from detx.components.modeling.config import preset
    from detx.components.modeling.network import build_network
    from detx.components.trainer import export

    keras.utils.set_random_seed(0)
    model_config, _ = preset("tiny")
    label_path = os.path.join(work, "label_map.pbtxt")
    label_map().write(label_path)
    return str(export.export(build_network(model_config, 3), model_config, label_path, os.path.join(work, "model")))


def served_version(root: str, work: str) -> str:
    """A push destination whose version 1 was trained on span 1 (its statistics stored as the Pusher does)."""
    from detx.components.data.ingest_options import IngestOptions
    from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore
    from detx.pipeline.ct import stats

    model = tiny_model(work)
    reference = stats.span_statistics(root, [1], IngestOptions(span_window=1)).statistics
    dest = os.path.join(work, "models", "detx")
    ModelStore(dest).push(
        model,
        {"data": {"source": root, "spans": [1]}},
        extra_files={TRAIN_STATS_FILENAME: reference.SerializeToString()},
    )
    return dest


def time_check(root: str, dest: str, state_dir: str | None = None) -> tuple[float, bool, int]:
    """Seconds of one check, whether it said to retrain, and the eval images it scored (0: none or cached)."""
    from detx.components.data.ingest_options import IngestOptions
    from detx.pipeline.config import ContinuousTrainingConfig
    from detx.pipeline.ct.check import check
    from detx.pipeline.ct.quality import QualityOptions

    quality = QualityOptions(state_dir, {"train": 4, "eval": 1}) if state_dir else None
    scored: list[str] = []
    start = time.perf_counter()
    decision = check(
        root,
        IngestOptions(span_window=1),
        dest,
        ContinuousTrainingConfig(),
        echo=scored.append,
        quality_options=quality,
    )
    seconds = time.perf_counter() - start
    images = sum(p.eval_images for p in decision.staleness) if any("staleness:" in s for s in scored) else 0
    return seconds, decision.retrain, images


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
        checks, firsts, cached, steps = [], [], [], []
        scored_images = 0
        for repeat in range(args.repeats):
            seconds, retrain, _ = time_check(root, dest)
            assert retrain, "the darker span must trigger"
            checks.append(seconds)
            state = os.path.join(work, f"ct-{repeat}")
            seconds, _, scored_images = time_check(root, dest, state)
            assert scored_images, "the first staleness check must score span 2"
            firsts.append(seconds)
            seconds, _, again = time_check(root, dest, state)
            assert not again, "the second staleness check must come from ct_quality.json"
            cached.append(seconds)
            steps.append(time_data_steps(root, os.path.join(work, f"project-{repeat}")))
            print(
                f"repeat {repeat + 1}: check {checks[-1]:.1f} s, with staleness {firsts[-1]:.1f} s "
                f"(cached {cached[-1]:.1f} s), data steps {steps[-1]:.1f} s",
                flush=True,
            )
    median = {name: statistics.median(v) for name, v in (("c", checks), ("f", firsts), ("k", cached), ("s", steps))}
    rows = [
        (f"`detx ct check` ({args.images:,} new images)", checks),
        (f"check + staleness, first ({scored_images} eval images scored)", firsts),
        ("check + staleness, cached", cached),
        ("data steps (ExampleGen, SchemaGen, StatisticsGen)", steps),
    ]
    print("\n| | Median wall time | Repeats | / data steps |\n|---|---|---|---|")
    for name, values in rows:
        repeats = ", ".join(f"{v:.1f}" for v in values)
        value = statistics.median(values)
        print(f"| {name} | {value:.2f} s | {repeats} s | {value / median['s']:.3f} |")
    result = {
        "images": args.images,
        "check_s": round(median["c"], 2),
        "staleness_first_s": round(median["f"], 2),
        "staleness_cached_s": round(median["k"], 2),
        "staleness_eval_images": scored_images,
        "data_steps_s": round(median["s"], 2),
        "ratio": round(median["c"] / median["s"], 3),
        "first_ratio": round(median["f"] / median["s"], 3),
        "cached_ratio": round(median["k"] / median["s"], 3),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
