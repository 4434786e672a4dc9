"""Does batching pay on CPU? `detx serve` at concurrency 8 on `encoded_image`, batched and not, in one run.

    .venv/bin/python bench/serving_batching.py [--requests 96] [--repeats 3]

The zoo320 preset (random weights: speed does not depend on them) is exported
twice from the same network: with the in-graph batching detx exports by
default, and without any. Three real `detx serve` processes on loopback:

- `none`: the model without in-graph batching, no server batching;
- `in_graph`: the default export (concurrent calls share one network execution);
- `server`: the model without in-graph batching, `detx serve --batching`.

Clients send a mix of 320x240 and 640x480 synthetic JPEGs (batches hold both
sizes), 8 threads in a loop. The three take turns in every repeat; figures are
medians of the repeats, ratios are against `none`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile

from common import load, start_server, stop_server, write_summary

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate, label_map
from detx.components.infra_validator.server_process import ModelServerProcess
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import export
from detx.serving.client import DetectionClient


def main() -> None:
    """Runs the comparison and writes bench/out/serving_batching.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=96, help="requests per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="detx-batchbench-")
    servers: dict[str, tuple[ModelServerProcess, DetectionClient]] = {}
    try:
        model_config, _ = preset("zoo320")
        lm_path = os.path.join(tmp, LABEL_MAP_FILENAME)
        label_map().write(lm_path)
        network = build_network(model_config, 3)
        for name, batching in (("in_graph", export.Batching()), ("plain", None)):
            model = export.export(network, model_config, lm_path, os.path.join(tmp, name), batching=batching)
            ModelStore(os.path.join(tmp, "models", name)).push(model, {})
        plain, in_graph = os.path.join(tmp, "models", "plain"), os.path.join(tmp, "models", "in_graph")
        servers["none"] = start_server(plain, tmp)
        servers["in_graph"] = start_server(in_graph, tmp)
        servers["server"] = start_server(plain, tmp, "--batching", "--max-batch-size", "32")
        small = [i.jpeg for i in generate(SynthConfig(num_images=8, seed=9, width=320, height=240))]
        large = [i.jpeg for i in generate(SynthConfig(num_images=8, seed=10))]
        images = [image for pair in zip(small, large, strict=True) for image in pair]

        for _, client in servers.values():  # warm-up: first calls trace and allocate
            load(client.predict, images, 2, 8)
        results: dict[str, list[dict[str, float]]] = {}
        for r in range(args.repeats):
            for name, (_, client) in servers.items():
                m = load(client.predict, images, args.concurrency, args.requests)
                results.setdefault(name, []).append(m)
                print(f"repeat {r + 1} {name} c={args.concurrency}: {m}", flush=True)
        summary: dict[str, object] = {
            key: {k: statistics.median(run[k] for run in runs) for k in runs[0]} for key, runs in results.items()
        }
        for name in ("in_graph", "server"):
            summary[f"ratio_rps_{name}"] = summary[name]["rps"] / summary["none"]["rps"]  # type: ignore[index]
        summary.update(runs=results, requests=args.requests, concurrency=args.concurrency)
        write_summary("serving_batching", summary)
    finally:
        for server, client in servers.values():
            stop_server(server, client)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
