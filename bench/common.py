"""What the benchmarks share: paths, the machine line, the summary file, a `detx serve` to measure, and load.

A bench script runs as `python bench/<script>.py`, so Python puts bench/ on
`sys.path`, not the repository root; importing this module appends the root,
so that scripts import the tests' and benchmarks' helpers in testing/ (not
installed). Appended, not prepended: the installed `detx` stays the one
imported (the root's detx/ holds only the namespace's `__init__.py`).

Light to import: TensorFlow, gRPC and NumPy are imported by the helpers that
need them, so a script (or a child process it measures) that only wants the
paths or the machine line does not pay for them.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detx.components.infra_validator.server_process import ModelServerProcess
    from detx.serving.client import DetectionClient

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Where full runs write their JSON results (docs/benchmarks.md quotes them).
OUT = os.path.join(HERE, "out")
# A served zoo320 version loads in seconds; a busy machine gets ample room before a start counts as failed.
SERVER_START_SECONDS = 600.0
# A stopped `detx serve` drains its requests first; after this it is killed.
SERVER_STOP_SECONDS = 60.0

if REPO not in sys.path:
    sys.path.append(REPO)


def machine() -> str:
    """The machine a result was measured on: architecture, cores, Python."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_summary(name: str, summary: dict[str, object]) -> None:
    """Adds the machine and date, prints the summary (without per-run figures), writes bench/out/<name>.json."""
    summary.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(summary, f, indent=2)


def start_server(dest: str, tmp: str, *args: str) -> tuple[ModelServerProcess, DetectionClient]:
    """A `detx serve` process (16 workers) on a free port, and a client once a version is AVAILABLE.

    Args:
        dest: the push destination to serve (model "detx").
        tmp: a folder for the server's log.
        *args: more `detx serve` options (later ones win over the defaults here).

    Raises:
        ServerFailed: the server exited, failed to load, or loaded nothing within SERVER_START_SECONDS.
    """
    import portpicker

    from detx.components.infra_validator.server_process import ModelServerProcess, detx_serve_command
    from detx.serving.client import DetectionClient

    port = portpicker.pick_unused_port()
    server = ModelServerProcess(
        detx_serve_command(dest, port, "--metrics-port", "0", "--workers", "16", *args),
        port,
        name="detx serve",
        log_path=os.path.join(tmp, f"serve-{port}.log"),
        env={"TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=REPO,
    )
    try:
        server.wait_available("detx", None, SERVER_START_SECONDS)
    except BaseException:
        server.stop(grace=SERVER_STOP_SECONDS)
        raise
    return server, DetectionClient(f"127.0.0.1:{port}", timeout=60, retries=20, backoff=1.0)


def stop_server(server: ModelServerProcess | None, client: DetectionClient | None = None) -> None:
    """Closes the client and stops the server (either may be None: a run that failed before starting it)."""
    if client is not None:
        client.close()
    if server is not None:
        server.stop(grace=SERVER_STOP_SECONDS)


def load(call: Callable[[bytes], object], images: list[bytes], concurrency: int, total: int) -> dict[str, float]:
    """Runs `total` calls over `concurrency` threads; returns requests/s and latency percentiles (ms)."""
    import numpy as np

    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            call(images[i % len(images)])
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"rps": total / wall, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
