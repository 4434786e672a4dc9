"""What a shadow mirror costs clients: p50/p99 of `detx serve` at concurrency 1 and 8, 10% mirrored vs none, one run.

    .venv/bin/python bench/shadow_mirror.py [--repeats 7] [--requests 160] [--percent 10]

The zoo320 preset (random weights: speed does not depend on them) is pushed
twice (versions 1 and 2, the same export) and served by one real `detx serve`
process that follows `detx_traffic.json`. Both measurements use the same
process with both versions loaded; only the split's shadow share differs:

- `none`: stable 1, candidate 2, shadow 0%;
- `mirror`: stable 1, candidate 2, shadow `--percent` (10%): the candidate runs
  on every tenth request stable answered, off the request path.

The file is rewritten between measurements and the server's published split
(`detx_serving_traffic_split_percent`) is awaited; after a mirrored
measurement, the mirror's backlog is awaited too, so its work never spills
into the next measurement. Clients send 640x480 synthetic JPEGs to
`encoded_image` from N threads in a loop. The two take turns in every
repeat (which goes first alternates); figures are medians of the repeats;
ratios are mirror / none, of the medians and (`paired_ratio_p50_*`) the median
of each repeat's own ratio. The mirrored and dropped counts come from the
server's metrics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable

import portpicker
from common import load, start_server, stop_server, write_summary
from prometheus_client.parser import text_string_to_metric_families

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate, label_map
from detx.components.infra_validator.server_process import ModelServerProcess
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.release import traffic_metrics as M
from detx.components.release.traffic import TrafficSplit, write_traffic
from detx.components.trainer import export
from detx.serving.client import DetectionClient

IDLE = frozenset({("model", "detx")})  # the labels of the mirror's backlog gauge


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as f:
        text = f.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _shadow(port: int, outcome: str) -> float:
    labels = frozenset({"model": "detx", "stable": "1", "candidate": "2", "outcome": outcome}.items())
    return _metrics(port).get((M.SHADOW_REQUESTS + "_total", labels), 0.0)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _apply(dest: str, port: int, percent: float) -> None:
    """Pins the split and waits until the server publishes it in force."""
    write_traffic(dest, TrafficSplit(stable=1, candidate=2, shadow_percent=percent))
    labels = frozenset({"model": "detx", "stable": "1", "candidate": "2", "share": M.ROLE_SHADOW}.items())
    _wait(lambda: _metrics(port).get((M.SPLIT, labels)) == percent, f"the server to follow shadow {percent}%")


def main() -> None:
    """Runs the comparison and writes bench/out/shadow_mirror.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=160, help="requests per measurement at concurrency 8")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--percent", type=float, default=10.0, help="share of stable's requests mirrored")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="detx-shadowbench-")
    server: ModelServerProcess | None = None
    client: DetectionClient | None = None
    try:
        model_config, _ = preset("zoo320")
        lm_path = os.path.join(tmp, LABEL_MAP_FILENAME)
        label_map().write(lm_path)
        model_dir = export.export(build_network(model_config, 3), model_config, lm_path, os.path.join(tmp, "export"))
        dest = os.path.join(tmp, "models", "detx")
        for _ in range(2):
            ModelStore(dest).push(model_dir, {})
        write_traffic(dest, TrafficSplit(stable=1, candidate=2))
        metrics_port = portpicker.pick_unused_port()
        server, client = start_server(dest, tmp, "--metrics-port", str(metrics_port), "--poll-seconds", "0.2")
        images = [image.jpeg for image in generate(SynthConfig(num_images=16, seed=9))]
        _apply(dest, metrics_port, 100.0)  # warm-up of both versions: first calls trace and allocate
        load(client.predict, images, 2, 16)
        _wait(lambda: _metrics(metrics_port).get((M.SHADOW_PENDING, IDLE)) == 0, "the mirror's warm-up")

        results: dict[str, list[dict[str, float]]] = {}
        for r in range(args.repeats):
            for concurrency in (1, 8):
                total = args.requests if concurrency == 8 else args.requests // 2
                order = (("none", 0.0), ("mirror", args.percent))
                for name, percent in order if (r + concurrency) % 2 else order[::-1]:
                    _apply(dest, metrics_port, percent)
                    before = {o: _shadow(metrics_port, o) for o in M.OUTCOMES}
                    m = load(client.predict, images, concurrency, total)
                    _wait(lambda: _metrics(metrics_port).get((M.SHADOW_PENDING, IDLE)) == 0, "the mirror's backlog")
                    for outcome in (M.OUTCOME_COMPARED, M.OUTCOME_DROPPED):
                        m[outcome] = _shadow(metrics_port, outcome) - before[outcome]
                    results.setdefault(f"{name}_c{concurrency}", []).append(m)
                    print(f"repeat {r + 1} {name} c={concurrency}: {m}", flush=True)
        summary: dict[str, object] = {
            key: {k: statistics.median(run[k] for run in runs) for k in runs[0]} for key, runs in results.items()
        }
        for c in (1, 8):
            mirror, none = summary[f"mirror_c{c}"], summary[f"none_c{c}"]
            for k in ("p50_ms", "p99_ms"):
                summary[f"ratio_{k[:3]}_c{c}"] = mirror[k] / none[k]  # type: ignore[index]
            summary[f"ratio_rps_c{c}"] = mirror["rps"] / none["rps"]  # type: ignore[index]
            # Each repeat's two measurements ran back to back: their ratio cancels slow drifts of a shared machine.
            pairs = zip(results[f"mirror_c{c}"], results[f"none_c{c}"], strict=True)
            summary[f"paired_ratio_p50_c{c}"] = statistics.median(m["p50_ms"] / n["p50_ms"] for m, n in pairs)
        load_average = (load_start, os.getloadavg()[0])  # before and after: the machine is shared
        summary.update(runs=results, requests=args.requests, percent=args.percent, load_average=load_average)
        write_summary("shadow_mirror", summary)
    finally:
        stop_server(server, client)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
