"""Records a real Prometheus answering PrometheusSource's queries over TF Serving-shaped metrics (run by hand).

    apt-get install prometheus   # Debian's Prometheus server (2.42 on Debian 12)
    .venv/bin/python tests/components/release/rollout/data/record_prometheus.py

Five pods serve TF Serving's exposition, written as TF Serving's exporter
writes it (tensorflow_serving/util/prometheus_exporter.cc: names with ':' for
'/', `# TYPE` lines, cumulative buckets with the last one "+Inf", numbers as
absl::StrCat writes doubles, 6 significant digits), with the counters of
servables/tensorflow/util.cc (request_count {model_name, status},
request_latency {model_name, API, entrypoint} in microseconds, buckets
10 * 1.8^i for i < 33). Prometheus scrapes them every second with the target
labels a Kubernetes scrape config gives (namespace, pod, track), while their
counters climb to the totals below; then each query PrometheusSource sends
(for the normal case and for each misconfiguration it explains) goes through
a recording proxy to the real server (and Prometheus' own p99 of each track, from
histogram_quantile), and the answers are written to
prometheus_tf_serving.json beside this file, with the pods' final expositions.
tests/components/release/rollout/test_prometheus.py replays them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import portpicker

from detx.components.release.rollout.prometheus import PrometheusSource
from detx.components.release.rollout.signals import SignalError
from detx.components.release.traffic import TrafficSplit

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prometheus_tf_serving.json")
BUCKETS = [10 * 1.8**i for i in range(33)]  # util.cc: monitoring::Buckets::Exponential(10, 1.8, 33)
RAMP_SECONDS = 6.0

# pod -> (namespace, track, {(model, status): requests}, [(model, API, entrypoint, mean latency us, requests)])
PODS = {
    "detx-serving-stable-7c9f-a": (
        "detx-serving",
        "stable",
        {("detx", "OK"): 700, ("detx", "INVALID_ARGUMENT"): 2, ("other", "OK"): 77},
        [("detx", "Predict", "GRPC", 21000.0, 700), ("detx", "predict", "REST", 90000.0, 5)],
    ),
    "detx-serving-stable-7c9f-b": (
        "detx-serving",
        "stable",
        {("detx", "OK"): 500, ("detx", "INVALID_ARGUMENT"): 1},
        [("detx", "Predict", "GRPC", 23000.0, 500)],
    ),
    "detx-serving-canary-5d4b-a": (
        "detx-serving",
        "canary",
        {("detx", "OK"): 60, ("detx", "INTERNAL"): 1},
        [("detx", "Predict", "GRPC", 31000.0, 60)],
    ),
    "detx-serving-canary-5d4b-b": (
        "detx-serving",
        "canary",
        {("detx", "OK"): 40},
        [("detx", "Predict", "GRPC", 29000.0, 40)],
    ),
    "detx-serving-stable-0a1b-x": (
        "staging",
        "stable",
        {("detx", "OK"): 999},
        [("detx", "Predict", "GRPC", 5000.0, 999)],
    ),
}


def exposition(pod: str, progress: float) -> str:
    """The pod's /monitoring/prometheus/metrics page when `progress` (0-1) of its requests have been answered."""
    _, _, counts, latencies = PODS[pod]
    rng = random.Random(pod)
    lines = ["# TYPE :tensorflow:serving:request_count counter"]
    for (model, status), total in counts.items():
        lines.append(
            f':tensorflow:serving:request_count{{model_name="{model}",status="{status}"}} {int(total * progress)}'
        )
    lines.append("# TYPE :tensorflow:serving:request_latency histogram")
    for model, api, entrypoint, mean, total in latencies:
        observed = [rng.expovariate(1 / mean) for _ in range(int(total * progress))]
        labels = f'model_name="{model}",API="{api}",entrypoint="{entrypoint}"'
        for limit in [*BUCKETS, float("inf")]:
            le = "+Inf" if limit == float("inf") else f"{limit:g}"
            lines.append(
                f':tensorflow:serving:request_latency_bucket{{{labels},le="{le}"}} {sum(o <= limit for o in observed)}'
            )
        lines.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {sum(observed):g}")
        lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {len(observed)}")
    return "\n".join(lines) + "\n"


class Pods(BaseHTTPRequestHandler):
    started = time.time()

    def do_GET(self) -> None:
        pod = self.path.strip("/").split("/")[0]
        progress = min(1.0, (time.time() - Pods.started) / RAMP_SECONDS)
        body = exposition(pod, progress).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def proxy(prometheus: str, recorded: list[dict]) -> type[BaseHTTPRequestHandler]:
    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).get("query", [""])[0]
            try:
                with urllib.request.urlopen(prometheus + self.path, timeout=10) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            if not any(r["query"] == query for r in recorded):
                recorded.append({"query": query, "status": status, "body": body.decode()})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Recorder


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def main() -> int:
    binary = shutil.which("prometheus")
    if binary is None:
        print("no prometheus binary: apt-get install prometheus", file=sys.stderr)
        return 1
    _, pods_port = serve(Pods)
    work = tempfile.mkdtemp()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "metrics_path": f"/{pod}/monitoring/prometheus/metrics",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{pods_port}"], "labels": {"namespace": ns, "pod": pod, "track": track}}
                ],
            }
            for pod, (ns, track, _, _) in PODS.items()
        ],
    }
    for i, job in enumerate(config["scrape_configs"]):
        job["job_name"] = f"kubernetes-pods-{i}"  # one target per pod, as pod discovery gives
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        json.dump(config, f)  # JSON is YAML
    port = portpicker.pick_unused_port()
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={work}/prometheus.yml",
            f"--storage.tsdb.path={work}/data",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    recorded: list[dict] = []
    try:
        _, proxy_port = serve(proxy(f"http://127.0.0.1:{port}", recorded))
        url = f"http://127.0.0.1:{proxy_port}"
        final = {pod: exposition(pod, 1.0) for pod in PODS}
        direct = PrometheusSource(f"http://127.0.0.1:{port}")
        deadline = time.time() + 60
        while True:  # until every pod's final page has been scraped
            try:
                done = direct.query('count(:tensorflow:serving:request_count{status="OK",model_name="detx"} > 0)')
                totals = direct.query('sum(:tensorflow:serving:request_count{model_name="detx"})')
            except SignalError:
                done, totals = [], []
            if done and totals and float(totals[0]["value"][1]) == 700 + 2 + 500 + 1 + 60 + 1 + 40 + 999:
                break
            if time.time() > deadline:
                raise TimeoutError("Prometheus did not scrape the final pages in 60 s")
            time.sleep(0.5)
        time.sleep(2)  # one more scrape of the unchanged pages
        shadow = TrafficSplit(3, 4, shadow_percent=10)
        canary = TrafficSplit(3, 4, canary_percent=10)
        PrometheusSource(url).counts(shadow)
        PrometheusSource(url).counts(canary)
        for wrong in (
            PrometheusSource(url, track_label="release"),
            PrometheusSource(url, namespace="prod"),
            PrometheusSource(url, model="nothing"),
        ):
            try:
                wrong.counts(shadow)
            except SignalError as e:
                print(f"recorded: {e}")
        # Prometheus' own p99 of each track, to check the histograms against (its histogram_quantile).
        buckets = PrometheusSource(url).queries()["latency_buckets"]
        PrometheusSource(url).query(f"histogram_quantile(0.99, {buckets})")
        try:
            PrometheusSource(url).query("sum by (track) (")
        except SignalError as e:
            print(f"recorded: {e}")
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[
            0
        ]
        with open(OUT, "w") as f:
            json.dump(
                {"prometheus": version, "pods": final, "labels": {p: PODS[p][:2] for p in PODS}, "responses": recorded},
                f,
                indent=1,
            )
            f.write("\n")
        print(f"{len(recorded)} answers of {version} -> {OUT}")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
