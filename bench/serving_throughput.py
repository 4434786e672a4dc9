"""`detx serve` beside the same model called in-process: requests/s and p50/p99 latency at concurrency 1 and 8.

    .venv/bin/python bench/serving_throughput.py [--requests 96] [--repeats 3]

The zoo320 preset (random weights: speed does not depend on them) is pushed
to a temporary model base path and served by a real `detx serve` process on
loopback. Clients send 640x480 synthetic JPEGs to `encoded_image`, each of N
threads in a loop; in-process, N threads call the same signature of the same
SavedModel on the same bytes. Server and in-process runs alternate; figures
are medians of the repeats, ratios are server / in-process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile

import tensorflow as tf
from common import load, start_server, stop_server, write_summary

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate, label_map
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import export


def _images(n: int) -> list[bytes]:
    return [image.jpeg for image in generate(SynthConfig(num_images=n, seed=9))]


def main() -> None:
    """Runs the comparison and writes bench/out/serving_throughput.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=96, help="requests per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="detx-servebench-")
    server = client = None
    try:
        model_config, _ = preset("zoo320")
        lm_path = os.path.join(tmp, LABEL_MAP_FILENAME)
        label_map().write(lm_path)
        model_dir = export.export(build_network(model_config, 3), model_config, lm_path, os.path.join(tmp, "export"))
        dest = os.path.join(tmp, "models", "detx")
        ModelStore(dest).push(model_dir, {})
        images = _images(16)

        server, client = start_server(dest, tmp)

        fn = tf.saved_model.load(model_dir).signatures["encoded_image"]

        def in_process(data: bytes) -> object:
            return fn(encoded_image=tf.constant([data]))

        def remote(data: bytes) -> object:
            return client.predict(data)

        for call in (in_process, remote):  # warm-up: first calls trace and allocate
            load(call, images, 2, 8)
        results: dict[str, list[dict[str, float]]] = {}
        for r in range(args.repeats):
            for concurrency in (1, 8):
                for name, call in (("in_process", in_process), ("server", remote)):
                    total = args.requests if concurrency == 8 else args.requests // 2
                    m = load(call, images, concurrency, total)
                    results.setdefault(f"{name}_c{concurrency}", []).append(m)
                    print(f"repeat {r + 1} {name} c={concurrency}: {m}", flush=True)
        summary: dict[str, object] = {}
        for key, runs in results.items():
            summary[key] = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        for c in (1, 8):
            server_c, local_c = summary[f"server_c{c}"], summary[f"in_process_c{c}"]
            summary[f"ratio_rps_c{c}"] = server_c["rps"] / local_c["rps"]  # type: ignore[index]
        summary.update(runs=results, requests=args.requests)
        write_summary("serving_throughput", summary)
    finally:
        stop_server(server, client)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
