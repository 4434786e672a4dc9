"""What the NaN/Inf guards cost (issue 19), each beside the work it guards, measured in one run.

    .venv/bin/python bench/finite_guards.py [--presets tiny,zoo320] [--steps 8] [--repeats 3]

- Trainer: the guard's per-step check (reads the step's logged loss) and its
  per-checkpoint scan of every weight and optimizer slot
  (`train.non_finite_variables`), beside the median training step of the
  same `train.train` run (batch 4; the first epoch, with tracing, not timed).
- Pusher: `pusher/finite.check` (reads every checkpoint tensor, loads the
  SavedModel, runs 4 eval examples through `serving_default`) beside
  `ModelStore.push` of the same model (the copy the Pusher does anyway).
- Server: `predict.non_finite_images` on an answer beside the model's own run
  of that request (`serving_default`, one 640x480 image), per request.

Random weights: none of these costs depend on them. Prints a markdown table and a JSON summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any

from check import parse_with_quick
from common import REPO  # noqa: F401 (importing common puts the repository root, testing/, on sys.path)

EVAL_SAMPLE = 4


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def bench_training(preset_name: str, examples: str, steps: int, work: str) -> dict[str, float]:
    """Median step time, the guard's per-step check and its per-checkpoint weight scan, in ms."""
    import keras

    from detx.components.modeling.config import preset
    from detx.components.trainer import data, train

    model_config, train_config = preset(preset_name)
    # Epochs of `steps` steps: the first (tracing) is not timed.
    config = dataclasses.replace(train_config, batch_size=4, train_steps=3 * steps, checkpoint_every=steps)
    step_times: list[float] = []
    scans: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if self._epoch > 0:
                step_times.append(time.perf_counter() - self._start)

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._epoch = epoch

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            start = time.perf_counter()
            bad = train.non_finite_variables([*self.model.weights, *self.model.optimizer.variables])
            scans.append(time.perf_counter() - start)
            assert not bad

    pattern = os.path.join(examples, "Split-train", "*")
    train.train(
        lambda b: data.make_dataset(pattern, model_config, config, batch_size=b),
        model_config,
        config,
        3,
        os.path.join(work, f"run-{preset_name}"),
        log=lambda _: None,
        callbacks=[Timer()],
    )
    guard = train._DivergenceGuard(config)
    calls = 10_000
    start = time.perf_counter()
    for i in range(calls):
        guard.on_train_batch_end(i % steps, {"loss": 1.0, "cls_loss": 0.5, "loc_loss": 0.4, "reg_loss": 0.1})
    per_step = (time.perf_counter() - start) / calls
    return {
        "step_ms": _median_ms(step_times),
        "guard_step_ms": per_step * 1000,
        "scan_ms": _median_ms(scans),
    }


def bench_pusher(model_dir: str, examples: list[bytes], repeats: int, work: str) -> dict[str, float]:
    """Median seconds of the numeric check and of a push of the same model."""
    from detx.components.model_store import ModelStore
    from detx.components.pusher import finite

    checks, pushes = [], []
    for repeat in range(repeats):
        start = time.perf_counter()
        result = finite.check(model_dir, examples)
        checks.append(time.perf_counter() - start)
        assert result.finite and result.requests == len(examples), result
        start = time.perf_counter()
        ModelStore(os.path.join(work, f"dest-{repeat}")).push(model_dir, {})
        pushes.append(time.perf_counter() - start)
    return {"check_s": statistics.median(checks), "push_s": statistics.median(pushes), "tensors": result.tensors}


def bench_server(model_dir: str, repeats: int) -> dict[str, float]:
    """Median ms of one serving_default run (640x480) and of counting its non-finite images."""
    import numpy as np
    import tensorflow as tf

    from detx.serving.model_server.predict import non_finite_images

    fn = tf.saved_model.load(model_dir).signatures["serving_default"]
    image = tf.constant(np.random.default_rng(0).integers(0, 255, (1, 480, 640, 3), dtype=np.uint8))
    fn(input_tensor=image)  # first call: not timed
    runs, counts = [], []
    for _ in range(max(repeats, 1) * 10):
        start = time.perf_counter()
        outputs = {k: v.numpy() for k, v in fn(input_tensor=image).items()}
        runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert non_finite_images(outputs) == 0
        counts.append(time.perf_counter() - start)
    return {"run_ms": _median_ms(runs), "count_ms": _median_ms(counts)}


def export(preset_name: str, label_map_path: str, path: str) -> str:
    from detx.components.modeling.config import preset
    from detx.components.modeling.network import build_network
    from detx.components.trainer import export as export_lib

    model_config, _ = preset(preset_name)
    return export_lib.export(build_network(model_config, 3), model_config, label_map_path, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,zoo320")
    parser.add_argument("--steps", type=int, default=8, help="steps per epoch (an epoch ends in a checkpoint)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_with_quick(parser, presets="tiny", steps=4, repeats=1)
    import tensorflow as tf

    from detx.components.data.label_map import LABEL_MAP_FILENAME
    from testing.data import write_examples

    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as work:
        examples = write_examples(os.path.join(work, "examples"), 40, seed=0, min_size=48)
        files = sorted(tf.io.gfile.glob(os.path.join(examples, "Split-eval", "*")))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP").take(EVAL_SAMPLE)
        sample = [bytes(r) for r in records.as_numpy_iterator()]
        for name in args.presets.split(","):
            model_dir = export(name, os.path.join(examples, LABEL_MAP_FILENAME), os.path.join(work, f"model-{name}"))
            rows[name] = {
                **bench_training(name, examples, args.steps, work),
                **bench_pusher(model_dir, sample, args.repeats, work),
                **bench_server(model_dir, args.repeats),
            }
            print(f"{name}: {json.dumps(rows[name])}", flush=True)
    print()
    print("| Preset | training step | guard per step | weight scan per checkpoint | Pusher check | push (copy) "
          "| serving_default run | non-finite count |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| `{name}` | {r['step_ms']:.0f} ms | {r['guard_step_ms'] * 1000:.1f} us | {r['scan_ms']:.1f} ms "
            f"({r['scan_ms'] / r['step_ms']:.3f} step) | {r['check_s']:.2f} s ({r['tensors']} tensors) "
            f"| {r['push_s']:.2f} s | {r['run_ms']:.1f} ms | {r['count_ms'] * 1000:.0f} us "
            f"(**{r['count_ms'] / r['run_ms']:.4f}** of the run) |"
        )
    summary = {
        **{f"{name}_{k}": round(v, 4) for name, r in rows.items() for k, v in r.items()},
        # The side-by-side ratios a threshold can hold (bench/check.py reads dotted keys of this summary).
        **{f"{name}_scan_per_step": round(r["scan_ms"] / r["step_ms"], 4) for name, r in rows.items()},
        **{f"{name}_count_per_run": round(r["count_ms"] / r["run_ms"], 5) for name, r in rows.items()},
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
