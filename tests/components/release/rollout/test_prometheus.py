"""PrometheusSource: TF Serving's metrics per track, from a real Prometheus' recorded answers.

data/record_prometheus.py made the recording.

A loopback server replays what Prometheus 2.42 answered to exactly the
queries PrometheusSource sends; a query it did not record fails the test.
The expected counts come from the pods' expositions themselves (parsed here
with prometheus_client), so the test checks the whole way from TF Serving's
page through Prometheus' aggregation to Counts.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import urllib.parse
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import portpicker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from detx.components.release.rollout import criteria
from detx.components.release.rollout.options import SHADOW as SHADOW_STAGE
from detx.components.release.rollout.options import RolloutOptions
from detx.components.release.rollout.prometheus import PrometheusSource
from detx.components.release.rollout.signals import EMPTY_HISTOGRAM, SignalError
from detx.components.release.traffic import TrafficSplit

RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "prometheus_tf_serving.json")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SHADOW = TrafficSplit(3, 4, shadow_percent=10)
CANARY = TrafficSplit(3, 4, canary_percent=10)


@pytest.fixture(scope="module")
def recorded():
    with open(RECORDED) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def prometheus(recorded):
    """A loopback server answering /api/v1/query with the recorded answers; the base URL."""
    answers = {r["query"]: (r["status"], r["body"]) for r in recorded["responses"]}

    class Replay(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
            if url.path != "/api/v1/query":
                status, body = 200, "<html>not Prometheus</html>"
            else:
                status, body = answers.get(query, (599, f"unrecorded query: {query}"))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def expected(recorded, track):
    """A track's answers and GRPC Predict latency histogram, summed over its pods' pages by hand."""
    answers: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    total = 0.0
    for pod, page in recorded["pods"].items():
        if recorded["labels"][pod] != ["detx-serving", track]:
            continue
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                labels = sample.labels
                if labels.get("model_name") != "detx":
                    continue
                # prometheus_client's parser names a counter's samples <family>_total.
                if family.name == ":tensorflow:serving:request_count":
                    answers[labels["status"]] += sample.value
                grpc = labels.get("API") == "Predict" and labels.get("entrypoint") == "GRPC"
                if grpc and sample.name.endswith("_bucket"):
                    le = float(labels["le"])
                    buckets[le if math.isinf(le) else le / 1e6] += sample.value
                if grpc and sample.name.endswith("_sum"):
                    total += sample.value / 1e6
    return dict(answers), tuple(sorted(buckets.items())), total


def test_shadow_stage_reads_the_canary_track_as_the_shadow_role(prometheus, recorded):
    counts = PrometheusSource(prometheus).counts(SHADOW)
    # Other namespaces (staging: 999), other models (77) and REST requests are not counted.
    assert counts.stable.answers == {"OK": 1200, "INVALID_ARGUMENT": 3}
    assert counts.shadow.answers == {"OK": 100, "INTERNAL": 1}
    assert counts.canary.answers == {} and counts.canary.latency == EMPTY_HISTOGRAM
    for role, track in ((counts.stable, "stable"), (counts.shadow, "canary")):
        answers, buckets, total = expected(recorded, track)
        assert role.answers == answers
        assert role.latency is not None
        assert [le for le, _ in role.latency.buckets] == pytest.approx([le for le, _ in buckets], rel=1e-12)
        assert [n for _, n in role.latency.buckets] == [n for _, n in buckets]
        assert len(role.latency.buckets) == 34 and role.latency.buckets[-1][0] == math.inf
        assert role.latency.count == role.latency.buckets[-1][1] == answers["OK"]  # latency: successful requests only
        assert role.latency.sum == pytest.approx(total, rel=1e-6)
        assert role.top_score is None
    assert counts.comparisons is None


def test_canary_stage_reads_the_canary_track_as_the_canary_role(prometheus):
    shadow, canary = PrometheusSource(prometheus).counts(SHADOW), PrometheusSource(prometheus).counts(CANARY)
    assert canary.canary == shadow.shadow
    assert canary.shadow.answers == {} and canary.stable == shadow.stable


def test_histograms_give_prometheus_own_p99(prometheus, recorded):
    source = PrometheusSource(prometheus)
    counts = source.counts(CANARY)
    p99_query = f"histogram_quantile(0.99, {source.queries()['latency_buckets']})"
    by_track = {s["metric"]["track"]: float(s["value"][1]) / 1e6 for s in source.query(p99_query)}
    assert criteria.histogram_quantile(0.99, counts.stable.latency) == pytest.approx(by_track["stable"], rel=1e-9)
    assert criteria.histogram_quantile(0.99, counts.canary.latency) == pytest.approx(by_track["canary"], rel=1e-9)
    assert 0.05 < by_track["stable"] < by_track["canary"] < 0.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"track_label": "release"}, "of model detx without a release label: copy the pods' `track` label"),
        ({"namespace": "prod"}, 'has the stable track of model detx but not with namespace="prod": name the namespace'),
        ({"model": "nothing"}, "has no :tensorflow:serving:request_count of model nothing: is TF Serving scraped"),
    ],
)
def test_a_prometheus_without_the_stable_track_is_explained(prometheus, options, message):
    with pytest.raises(SignalError, match=re.escape(message)):
        PrometheusSource(prometheus, **options).counts(SHADOW)


def test_unreadable_prometheus_says_why_and_what_to_do(prometheus):
    with pytest.raises(
        SignalError, match=re.escape('(HTTP 400, bad_data: invalid parameter "query": 1:17: parse error')
    ):
        PrometheusSource(prometheus).query("sum by (track) (")
    with pytest.raises(SignalError, match=re.escape("did not answer the query 'up' as Prometheus' /api/v1/query does")):
        PrometheusSource(prometheus + "/not-prometheus").query("up")
    closed = f"http://127.0.0.1:{portpicker.pick_unused_port()}"
    with pytest.raises(
        SignalError, match=re.escape(f"cannot reach Prometheus at {closed} (") + ".*kubectl port-forward"
    ):
        PrometheusSource(closed, timeout=5).counts(SHADOW)


def test_splits_it_cannot_judge_are_refused(prometheus):
    with pytest.raises(SignalError, match="cannot tell mirrored requests from clients'"):
        PrometheusSource(prometheus).counts(TrafficSplit(3, 4, shadow_percent=5, canary_percent=5))
    with pytest.raises(ValueError, match="a split without a candidate has nothing to judge"):
        PrometheusSource(prometheus).counts(TrafficSplit(3))


def test_the_documented_queries_are_the_ones_sent():
    with open(os.path.join(REPO, "docs", "rollout-kubernetes.md")) as f:
        docs = f.read()
    for query in PrometheusSource("http://prometheus:9090").queries().values():
        assert query in docs


def test_the_controller_judges_a_cluster_stage_on_what_tf_serving_measures(prometheus):
    source = PrometheusSource(prometheus)
    delta = criteria.subtract(source.counts(SHADOW), criteria.NOTHING_YET)
    verdict = criteria.judge(SHADOW_STAGE, delta, RolloutOptions(min_requests=100), source.describe())
    lines = {f.name: f.line() for f in verdict.figures}
    assert verdict.judged == 101
    assert lines["error rate"].startswith("error rate: 1.0% (1 of 101; stable 0.2%")
    assert "not measured" not in lines["p99 latency"]
    for unmeasured in ("agreement", "mean top score"):
        assert lines[unmeasured].startswith(f"{unmeasured}: Prometheus at {prometheus}")
        assert lines[unmeasured].endswith("-> not measured")
