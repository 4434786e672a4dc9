"""The first request a new version answers after a swap under load, with and without a warm-up file.

    .venv/bin/python bench/warmup_latency.py [--swaps 3] [--steady-seconds 4]

A real `detx serve` process on loopback serves the zoo320 preset (random
weights: speed does not depend on them). Two client threads send 640x480
synthetic JPEGs to `encoded_image` in a loop the whole time (concurrency 2).
Then, in turn, a copy of the same export is pushed as a new version
(`ModelStore.push`) without a warm-up file, and with one (`components/warmup.py`:
one record per signature for each of 2 synthetic images, 6 in all, as the
InfraValidator writes from eval images). The two kinds of swap alternate, the
first to go alternating too.

For each swap: the steady-state latency just before the push (p50 of the
requests answered in the `--steady-seconds` before it, all by the version
then serving), the time from the push to the first answer by the new version,
and the latency of the first request the new version answered (the earliest
sent of those whose response carries the new version number). Each swap's
ratio is its first request / the steady p50 just before it; figures and
ratios are medians over the swaps of each kind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time

from common import start_server, stop_server, write_summary

from detx.components import warmup
from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate, label_map, od_api_example
from detx.components.infra_validator.server_process import ModelServerProcess
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import export
from detx.serving.client import DetectionClient


class Traffic:
    """Client threads calling the server in a loop; every answer is kept as (sent, seconds, version)."""

    def __init__(self, client: DetectionClient, images: list[bytes], concurrency: int) -> None:
        self.answers: list[tuple[float, float, int]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(client, images[i::concurrency]), daemon=True)
            for i in range(concurrency)
        ]

    def _loop(self, client: DetectionClient, images: list[bytes]) -> None:
        i = 0
        while not self._stop.is_set():
            sent = time.perf_counter()
            try:
                version = client.predict(images[i % len(images)]).version
            except Exception as e:  # kept and reported: a swap must not fail requests
                with self._lock:
                    self.errors.append(str(e))
                continue
            with self._lock:
                self.answers.append((sent, time.perf_counter() - sent, version))
            i += 1

    def start(self) -> None:
        """Starts the clients."""
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stops the clients after their current request."""
        self._stop.set()
        for t in self._threads:
            t.join()

    def since(self, start: float) -> list[tuple[float, float, int]]:
        """Answers to requests sent at or after `start`."""
        with self._lock:
            return [a for a in self.answers if a[0] >= start]


def swap(
    store: ModelStore, model_dir: str, traffic: Traffic, steady_seconds: float, timeout: float = 600.0
) -> dict[str, float]:
    """Waits `steady_seconds` under load, pushes `model_dir`, and times the new version's first answer.

    A settling second comes first, so the previous swap's unload and slow first answers stay out of the window.
    """
    time.sleep(1.0)
    window = time.perf_counter()
    time.sleep(steady_seconds)
    pushed_at = time.perf_counter()
    steady = [seconds for sent, seconds, _ in traffic.since(window) if sent + seconds <= pushed_at]
    version = store.push(model_dir, {}).version
    deadline = pushed_at + timeout
    while not (new := [a for a in traffic.since(pushed_at) if a[2] == version]):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"version {version} answered nothing in {timeout:.0f} s")
        time.sleep(0.05)
    sent, seconds, _ = min(new)
    steady_p50 = statistics.median(steady)
    return {
        "version": version,
        "steady_p50_ms": steady_p50 * 1000,
        "steady_requests": len(steady),
        "first_ms": seconds * 1000,
        "ratio_first_to_steady": seconds / steady_p50,
        "push_to_first_answer_s": sent + seconds - pushed_at,
    }


def main() -> None:
    """Runs the swaps and writes bench/out/warmup_latency.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=3, help="swaps of each kind")
    parser.add_argument("--steady-seconds", type=float, default=4.0, help="load before each push, for the p50")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="detx-warmupbench-")
    server: ModelServerProcess | None = None
    client: DetectionClient | None = None
    traffic: Traffic | None = None
    try:
        model_config, _ = preset("zoo320")
        lm_path = os.path.join(tmp, LABEL_MAP_FILENAME)
        label_map().write(lm_path)
        cold = export.export(build_network(model_config, 3), model_config, lm_path, os.path.join(tmp, "cold"))
        warm = shutil.copytree(cold, os.path.join(tmp, "warm"))
        examples = [od_api_example(i).SerializeToString() for i in generate(SynthConfig(num_images=2, seed=11))]
        requests = warmup.build(examples, "detx")
        warmup.write(warmup.path_in(warm), requests)
        dest = os.path.join(tmp, "models", "detx")
        store = ModelStore(dest)
        store.push(cold, {})
        server, client = start_server(dest, tmp)
        traffic = Traffic(client, [i.jpeg for i in generate(SynthConfig(num_images=16, seed=9))], args.concurrency)
        traffic.start()
        runs: dict[str, list[dict[str, float]]] = {"without_warmup": [], "with_warmup": []}
        for r in range(args.swaps):
            kinds = ["without_warmup", "with_warmup"] if r % 2 == 0 else ["with_warmup", "without_warmup"]
            for kind in kinds:
                m = swap(store, warm if kind == "with_warmup" else cold, traffic, args.steady_seconds)
                runs[kind].append(m)
                print(f"swap {r + 1} {kind}: {m}", flush=True)
        traffic.stop()
        summary: dict[str, object] = {}
        for kind, measured in runs.items():
            summary[kind] = {k: statistics.median(m[k] for m in measured) for k in measured[0] if k != "version"}
        summary["steady_p50_ms"] = statistics.median(m["steady_p50_ms"] for ms in runs.values() for m in ms)
        summary.update(
            runs=runs,
            warmup_records=len(requests),
            concurrency=args.concurrency,
            failed_requests=len(traffic.errors),
            errors=traffic.errors[:5],
        )
        write_summary("warmup_latency", summary)
    finally:
        if traffic is not None:
            traffic.stop()
        stop_server(server, client)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
