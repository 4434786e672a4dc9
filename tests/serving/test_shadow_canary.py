"""Shadow and canary in real `detx serve` processes under client load: who answers, what is compared, what is counted.

Versions are detectors of known quality (testing/evaluation.py):
their answers depend on the request and differ between a perfect and a noisy
one, so each response's outputs show which version really answered.
"""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter
from dataclasses import astuple

import grpc
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from detx.components.evaluation.detections import Detections, match
from detx.components.release import traffic_metrics as M
from detx.components.release.traffic import TrafficSplit, write_traffic
from detx.serving.model_server.request_log import read_log, read_shadow
from tests.serving.conftest import oracle_examples, push_oracle
from tests.serving.server_process import Server

pytestmark = pytest.mark.e2e

NOISY = {"jitter": 0.08, "keep": 0.7, "false_positives": 2}
OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")


def _request(example: bytes, version: int | None = None, label: str = "") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "detx"
    request.model_spec.signature_name = "tf_example"
    if version is not None:
        request.model_spec.version.value = version
    if label:  # version and version_label are one oneof: setting either clears the other
        request.model_spec.version_label = label
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example]))
    return request


def _outputs(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    return {k: tf.make_ndarray(response.outputs[k]) for k in OUTPUTS}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in OUTPUTS)


class _Load:
    """Client threads sending requests that name no version until stopped; every failure is kept."""

    def __init__(self, server: Server, examples: list[bytes], threads: int = 3) -> None:
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
        self._examples = examples
        self._go = threading.Event()
        self._go.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self.versions: Counter[int] = Counter()
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not self._stop.is_set():
            self._go.wait()
            with self._lock:
                if not self._go.is_set() or self._stop.is_set():
                    continue
                self._busy += 1
            try:
                example = self._examples[int(rng.integers(len(self._examples)))]
                response = self._stub.Predict(_request(example), timeout=60)
                with self._lock:
                    self.versions[response.model_spec.version.value] += 1
            except grpc.RpcError as e:
                with self._lock:
                    self.failures.append(str(e))
            finally:
                with self._lock:
                    self._busy -= 1

    def pause(self, server: Server) -> None:
        with self._lock:
            self._go.clear()
        server.wait_for(lambda: self._busy == 0, what="client requests in flight to finish")

    def resume(self) -> None:
        self._go.set()

    def seen(self, version: int) -> int:
        with self._lock:
            return self.versions[version]

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        for t in self._threads:
            t.join(timeout=60)


def _metrics(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as f:
        text = f.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset({"model": "detx", **labels}.items())), 0.0)


def _answers(metrics: dict, version: int, role: str) -> float:
    return _value(metrics, M.ANSWERS + "_total", version=str(version), role=role, code="OK")


def _shadow(metrics: dict, name: str, label: str, value: str) -> float:
    return _value(metrics, name + "_total", stable="1", candidate="2", **{label: value})


@pytest.fixture(scope="module")
def oracles(tmp_path_factory):
    """Version 1 perfect, version 2 noisy; the requests; each version's own answer to each request."""
    root = tmp_path_factory.mktemp("shadow")
    dest, work = str(root / "models" / "detx"), root / "work"
    work.mkdir()
    assert push_oracle(dest, str(work)) == 1 and push_oracle(dest, str(work), **NOISY) == 2
    examples = oracle_examples()
    expected = {}
    for version in (1, 2):
        fn = tf.saved_model.load(f"{dest}/{version}").signatures["tf_example"]
        expected[version] = [{k: v.numpy() for k, v in fn(examples=tf.constant([e])).items()} for e in examples]
    return dest, examples, expected


def test_split_followed_from_the_file_on_a_running_server_canary_and_shadow_under_load(tmp_path, oracles):
    dest, examples, expected = oracles
    write_traffic(dest, TrafficSplit(stable=1))  # pinned before the server starts, as the Pusher pins it
    log_dir = str(tmp_path / "requests")
    server = Server(dest, "--request-log", log_dir, "--request-log-sample", "1")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    load = None
    try:
        load = _Load(server, examples)
        server.wait_for(lambda: load.seen(1) >= 5, what="stable answering the load")

        # Canary 25%: the file changes, the running server follows it.
        write_traffic(dest, TrafficSplit(stable=1, candidate=2, canary_percent=25))
        server.wait_for(lambda: load.seen(2) > 0, what="the candidate answering a share of the load")
        load.pause(server)
        before = _metrics(server)
        answered = []
        for i in range(100):
            response = stub.Predict(_request(examples[i % len(examples)]), timeout=60)
            version = response.model_spec.version.value
            # The version the response names is the one whose answer it carries.
            assert _same(_outputs(response), expected[version][i % len(examples)]), (i, version)
            answered.append(version)
        assert Counter(answered) == {1: 75, 2: 25}  # exactly P per 100: no randomness
        after = _metrics(server)
        assert _answers(after, 2, M.ROLE_CANARY) - _answers(before, 2, M.ROLE_CANARY) == 25
        assert _answers(after, 1, M.ROLE_STABLE) - _answers(before, 1, M.ROLE_STABLE) == 75
        # A request naming a version or a label gets exactly that one.
        assert stub.Predict(_request(examples[0], label="canary"), timeout=60).model_spec.version.value == 2
        assert stub.Predict(_request(examples[0], label="stable"), timeout=60).model_spec.version.value == 1
        assert stub.Predict(_request(examples[0], version=2), timeout=60).model_spec.version.value == 2
        load.resume()

        # Shadow 50%, canary 0: clients only ever get stable's answers; comparisons are counted.
        write_traffic(dest, TrafficSplit(stable=1, candidate=2, shadow_percent=50))
        compared = (M.SHADOW_REQUESTS, "outcome", M.OUTCOME_COMPARED)
        server.wait_for(lambda: _shadow(_metrics(server), *compared) > 0, what="the first shadow comparison")
        load.pause(server)
        server.wait_for(lambda: _value(_metrics(server), M.SHADOW_PENDING) == 0, what="the mirror to catch up")
        before = _metrics(server)
        example = examples[1]
        for _ in range(40):
            response = stub.Predict(_request(example), timeout=60)
            assert response.model_spec.version.value == 1
            assert _same(_outputs(response), expected[1][1])  # never the candidate's answer
        server.wait_for(
            lambda: _shadow(_metrics(server), *compared) - _shadow(before, *compared) >= 20,
            what="the burst's 20 comparisons",
        )
        after = _metrics(server)
        one = match(Detections.from_outputs(expected[1][1]), Detections.from_outputs(expected[2][1]), 0.3)
        assert one.matched > 0 and one.only_reference + one.only_candidate > 0  # the noisy candidate disagrees
        delta = {
            (name, value): _shadow(after, name, label, value) - _shadow(before, name, label, value)
            for name, label, values in (
                (M.SHADOW_REQUESTS, "outcome", M.OUTCOMES),
                (M.SHADOW_DETECTIONS, "kind", M.KINDS),
            )
            for value in values
        }
        assert delta == {
            (M.SHADOW_REQUESTS, M.OUTCOME_COMPARED): 20,
            (M.SHADOW_REQUESTS, M.OUTCOME_FAILED): 0,
            (M.SHADOW_REQUESTS, M.OUTCOME_DROPPED): 0,
            (M.SHADOW_DETECTIONS, M.KIND_MATCHED): 20 * one.matched,
            (M.SHADOW_DETECTIONS, M.KIND_ONLY_STABLE): 20 * one.only_reference,
            (M.SHADOW_DETECTIONS, M.KIND_ONLY_CANDIDATE): 20 * one.only_candidate,
        }
        assert _answers(after, 2, M.ROLE_SHADOW) - _answers(before, 2, M.ROLE_SHADOW) == 20
        assert _answers(after, 2, M.ROLE_CANARY) == _answers(before, 2, M.ROLE_CANARY)
        latency = (M.ANSWER_LATENCY + "_count", {"version": "2", "role": M.ROLE_SHADOW})
        assert _value(after, latency[0], **latency[1]) - _value(before, latency[0], **latency[1]) == 20
        top = (M.TOP_SCORE + "_count", {"version": "1", "role": M.ROLE_STABLE})
        assert _value(after, top[0], **top[1]) - _value(before, top[0], **top[1]) == 40  # one image each
        load.resume()

        # Promotion: version 2 takes everything and version 1 is unloaded, under load.
        write_traffic(dest, TrafficSplit(stable=2))
        server.wait_for(
            lambda: _value(_metrics(server), "detx_serving_model_version_state", version="1", state="END") == 1,
            what="version 1 to be unloaded after the promotion",
        )
        seen = load.seen(2)
        server.wait_for(lambda: load.seen(2) > seen + 5, what="version 2 answering the load")
        load.stop()
        assert load.failures == []  # zero failed client requests while the split changed three times
        assert sum(load.versions.values()) >= 30
    finally:
        if load is not None:
            load.stop()
        assert server.stop() == 0
    # The request log: roles on answers, one line per comparison with what the metrics counted.
    roles = Counter((r.version, r.role) for r in read_log(log_dir))
    assert roles[(2, M.ROLE_CANARY)] >= 25 and roles[(1, M.ROLE_STABLE)] >= 75 and roles[(2, M.ROLE_STABLE)] > 0
    lines = list(read_shadow(log_dir))
    pool = {
        (m.matched, m.only_reference, m.only_candidate)
        for m in (
            match(Detections.from_outputs(a), Detections.from_outputs(b), 0.3)
            for a, b in zip(expected[1], expected[2], strict=True)
        )
    }
    assert len(lines) >= 20 and {(x.stable, x.candidate) for x in lines} == {(1, 2)}
    assert {(x.matched, x.only_stable, x.only_candidate) for x in lines} <= pool
    burst = [x for x in lines if (x.matched, x.only_stable, x.only_candidate) == astuple(one)[:3]]
    assert len(burst) >= 20 and all(x.stable_seconds > 0 and x.candidate_seconds > 0 for x in burst)
