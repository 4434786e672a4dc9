"""Batch norm folded at export: the exported zoo320 network and `serving_default`, folded vs unfolded, in one run.

    .venv/bin/python bench/bn_fold.py [--repeats 9] [--calls 20]

One zoo320 network (random weights: speed does not depend on them) is exported
twice, with `export.export(..., fold_batchnorm=False)` (the network as trained:
Keras 3 runs each of its 76 BNs as Rsqrt/Mul/Sub/AddV2 ops) and with the default
`fold_batchnorm=True`. Two things are timed, each from its loaded SavedModel:

- the network alone (normalized [B, 320, 320, 3] in, box codes and logits out),
  saved as it runs inside the export (`DetectorModule.model(x, training=False)`),
  at batch 1 and 8;
- the whole `serving_default` signature (resize, network in its BatchFunction,
  decode, NMS) on one 640x480 uint8 image, with the default in-graph batching.

Every repeat times `--calls` consecutive calls of each variant in turn (batch 8
gets a quarter of them; the first to go alternates), so load from other work
falls on both alike; figures are medians of the repeats' ms per call, ratios
folded / unfolded.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from check import parse_with_quick
from common import write_summary

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import label_map
from detx.components.modeling.config import ModelConfig, preset
from detx.components.modeling.network import DetectorNetwork, build_network
from detx.components.trainer import export

VARIANTS = ("unfolded", "folded")


def save_network(network: DetectorNetwork, config: ModelConfig, label_map_path: str, fold: bool, path: str) -> str:
    """Saves the network exactly as the export runs it (folded or not), with one signature of its own."""
    module = export.DetectorModule(network, config, label_map_path, batching=None, fold_batchnorm=fold)
    size = config.image_size
    spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="image")
    holder = tf.Module()
    holder.model = module.model
    holder.run = tf.function(lambda x: holder.model(x, training=False), input_signature=[spec])
    tf.saved_model.save(holder, path)
    return path


def ms_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) * 1000 / calls


def alternate(fns: dict[str, Callable[[], object]], repeats: int, calls: int, label: str) -> dict[str, list[float]]:
    """Milliseconds per call of each function, taking turns in every repeat (after one warm-up call each)."""
    for fn in fns.values():
        fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        # Each goes first in every other repeat, so neither always follows the other's warm caches.
        for name in list(fns) if r % 2 == 0 else list(reversed(fns)):
            runs[name].append(ms_per_call(fns[name], calls))
        print(f"repeat {r + 1} {label}: " + ", ".join(f"{n} {v[-1]:.2f} ms" for n, v in runs.items()), flush=True)
    return runs


def summarize(runs: dict[str, list[float]]) -> dict[str, object]:
    """Medians in ms and the ratio folded / unfolded."""
    median = {name: statistics.median(values) for name, values in runs.items()}
    return {"ms": median, "ratio_folded_unfolded": median["folded"] / median["unfolded"]}


def main() -> None:
    """Runs the comparison and writes bench/out/bn_fold.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20, help="calls per measurement at batch 1")
    args = parse_with_quick(parser, repeats=3, calls=5)
    tmp = tempfile.mkdtemp(prefix="detx-bnfold-")
    try:
        config, _ = preset("zoo320")
        lm_path = os.path.join(tmp, LABEL_MAP_FILENAME)
        label_map().write(lm_path)
        network = build_network(config, 3)
        networks, signatures, loaded = {}, {}, []  # `loaded` keeps the objects that own the variables
        for name in VARIANTS:
            fold = name == "folded"
            path = save_network(network, config, lm_path, fold, os.path.join(tmp, f"network_{name}"))
            loaded.append(tf.saved_model.load(path))
            networks[name] = loaded[-1].run
            full = export.export(network, config, lm_path, os.path.join(tmp, f"model_{name}"), fold_batchnorm=fold)
            loaded.append(tf.saved_model.load(full))
            signatures[name] = loaded[-1].signatures[export.SERVING_DEFAULT]

        rng = np.random.default_rng(0)
        load_before = os.getloadavg()
        summary: dict[str, object] = {}
        runs: dict[str, dict[str, list[float]]] = {}
        for batch in (1, 8):
            x = tf.constant(rng.uniform(-1, 1, (batch, config.image_size, config.image_size, 3)).astype(np.float32))
            fns: dict[str, Callable[[], object]] = {name: functools.partial(networks[name], x) for name in VARIANTS}
            calls = args.calls if batch == 1 else max(args.calls // 4, 1)
            key = f"network_batch_{batch}"
            runs[key] = alternate(fns, args.repeats, calls, key)
            summary[key] = summarize(runs[key])
        image = tf.constant(rng.integers(0, 256, (1, 480, 640, 3), dtype=np.uint8))
        fns = {name: functools.partial(signatures[name], input_tensor=image) for name in VARIANTS}
        runs["serving_default_batch_1"] = alternate(fns, args.repeats, args.calls, "serving_default_batch_1")
        summary["serving_default_batch_1"] = summarize(runs["serving_default_batch_1"])
        summary.update(
            runs=runs,
            repeats=args.repeats,
            calls=args.calls,
            load_average_before_after=[load_before[0], os.getloadavg()[0]],
        )
        if args.quick:  # bench-check reads the summary; a quick run must not replace the full run's figures
            print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
        else:
            write_summary("bn_fold", summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
