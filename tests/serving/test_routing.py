"""Traffic splits in the model server without a subprocess: routing shares, the split's life in the VersionManager,
the shadow mirror's outcomes, the CLI's flags, and a fixed split served over real gRPC in process."""

from __future__ import annotations

import os
import threading
from collections import Counter

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from detx.components.evaluation.detections import Detections, match
from detx.components.model_store import ModelStore
from detx.components.release import traffic_metrics as M
from detx.components.release.traffic import TrafficError, TrafficSplit, write_traffic
from detx.serving.model_server.metrics import ServerMetrics
from detx.serving.model_server.routing import FileTraffic, FixedTraffic, Router
from detx.serving.model_server.server import ModelServer, ServerConfig
from detx.serving.model_server.shadow import Mirrored, MirrorOptions, ShadowMirror, top_scores
from detx.serving.model_server.versions import State, VersionManager
from tests.serving.conftest import oracle_examples, push_oracle


def _manager(dest, traffic, broken=(), metrics=None):
    def loader(path):
        if os.path.basename(path) in {str(b) for b in broken}:
            raise OSError(f"cannot load {path}")
        return f"model@{os.path.basename(path)}"

    on_change = None if metrics is None else metrics.update_versions
    return VersionManager(
        "detx", dest, loader=loader, retry_interval=3600.0, max_load_attempts=1, traffic=traffic, on_change=on_change
    )


def _value(metrics: ServerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"model": "detx", **labels}) or 0.0


@pytest.fixture
def four_versions(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    model = fake_saved_model(tmp_path / "m")
    for _ in range(4):
        ModelStore(dest).push(model, {})
    return dest


def test_the_canary_share_is_exact_and_named_versions_and_labels_get_exactly_theirs(four_versions):
    write_traffic(four_versions, TrafficSplit(stable=2, candidate=4, canary_percent=12.5, shadow_percent=30))
    manager = _manager(four_versions, FileTraffic(four_versions))
    manager.sync()
    assert {v.version for v in manager.snapshot() if v.state == State.AVAILABLE} == {2, 4}  # exactly the split's
    router = Router(manager)
    routes = [router.route() for _ in range(200)]
    assert Counter((r.version, r.role) for r in routes) == {(2, M.ROLE_STABLE): 175, (4, M.ROLE_CANARY): 25}
    assert [i for i, r in enumerate(routes[:16]) if r.version == 4] == [7, 15]  # spread out, not in a run
    assert router.route(label="canary").version == 4 and router.route(label="stable").version == 2
    assert router.route(version=4).role == M.ROLE_CANARY and router.route(version=2).role == M.ROLE_STABLE
    assert router.route(count=False).version == 2  # metadata requests never take the canary share
    with pytest.raises(LookupError, match=r"Specific\(detx, 3\)"):
        router.route(version=3)  # on disk, but not in the split: not loaded
    # Shadow: exactly 30 of every 100 of stable's answers, never the candidate's own.
    stable = [r for r in routes if r.role == M.ROLE_STABLE][:100]
    assert sum(router.mirror(r) for r in stable) == 30
    assert not any(router.mirror(r) for r in routes if r.role == M.ROLE_CANARY)


def test_the_split_changes_with_the_file_and_never_routes_to_a_version_that_cannot_answer(four_versions):
    metrics = ServerMetrics("detx")
    manager = _manager(four_versions, FileTraffic(four_versions), broken=[3], metrics=metrics)
    manager.sync()
    assert manager.traffic() is None and manager.resolve()[0] == 4  # no file: the latest-version policy
    write_traffic(four_versions, TrafficSplit(stable=2, candidate=3, canary_percent=50))
    manager.sync()
    # Candidate 3 fails to load: stable alone is in force, so nothing is routed or mirrored to it.
    assert manager.traffic() == TrafficSplit(stable=2)
    assert {Router(manager).route().version for _ in range(10)} == {2}
    assert 4 not in {v.version for v in manager.snapshot() if v.state == State.AVAILABLE}  # unloaded
    with open(os.path.join(four_versions, "detx_traffic.json"), "w") as f:
        f.write("{not json")
    manager.sync()  # a broken file keeps the split that was in force: clients keep being served
    assert manager.traffic() == TrafficSplit(stable=2)
    write_traffic(four_versions, TrafficSplit(stable=1, candidate=2, shadow_percent=10))
    manager.sync()
    assert manager.traffic() == TrafficSplit(stable=1, candidate=2, shadow_percent=10)
    split = {"stable": "1", "candidate": "2"}
    assert _value(metrics, M.SPLIT, **split, share="shadow") == 10  # the split in force, as published
    assert _value(metrics, M.SPLIT, **split, share="canary") == 0
    assert manager.view().labels == {"stable": 1, "canary": 2}
    write_traffic(four_versions, TrafficSplit(stable=9))  # a stable version not on disk: as ModelStore reads it
    manager.sync()
    assert manager.traffic() is None and manager.resolve()[0] == 4
    assert metrics.registry.get_sample_value(M.SPLIT, {"model": "detx", **split, "share": "shadow"}) is None


def test_a_fixed_split_takes_stable_from_the_usual_policy_other_than_the_candidate(four_versions):
    write_traffic(four_versions, TrafficSplit(stable=1))  # ignored: the command line's split wins
    manager = _manager(four_versions, FixedTraffic(3, canary_percent=100))
    manager.sync()
    assert manager.traffic() == TrafficSplit(stable=4, candidate=3, canary_percent=100)
    assert FixedTraffic(4).wanted([1, 2, 3, 4], policy_versions=(1, 2, 4)) == TrafficSplit(stable=2, candidate=4)
    assert FixedTraffic(4).wanted([4], policy_versions=()) is None  # nothing else to be stable (yet)
    with pytest.raises(TrafficError, match="canary_percent must be between 0 and 100"):
        FixedTraffic(4, canary_percent=120)


class _FakeModel:
    """A loaded version whose `serving_default` runs `fn` on a float input (to drive the mirror's outcomes)."""

    def __init__(self, fn):
        spec = {"x": tf.TensorSpec([None], tf.float32, name="x")}

        def signature(**inputs):
            return fn(inputs["x"])

        signature.structured_input_signature = ((), spec)
        self.signatures = {"serving_default": signature}


def _detections(boxes, classes, scores) -> dict[str, np.ndarray]:
    n = len(scores)
    return {
        "detection_boxes": np.asarray([boxes], np.float32).reshape(1, n, 4),
        "detection_classes": np.asarray([classes], np.float32),
        "detection_scores": np.asarray([scores], np.float32),
        "num_detections": np.asarray([n], np.float32),
    }


def test_the_mirror_compares_counts_failures_and_drops_when_full_without_blocking():
    metrics = ServerMetrics("detx")
    stable_out = _detections([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [1, 2], [0.9, 0.8])
    cand_out = _detections([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0.5, 0.5, 1]], [1, 3, 2], [0.7, 0.8, 0.6])
    entered, release = threading.Event(), threading.Event()

    def candidate(x):
        if float(x[0]) < 0:
            raise tf.errors.InvalidArgumentError(None, None, "the candidate cannot take this")
        entered.set()
        release.wait(30)
        return {k: tf.constant(v) for k, v in cand_out.items()}

    mirror = ShadowMirror("detx", metrics, MirrorOptions(min_score=0.3, queue_size=1))
    model = _FakeModel(candidate)

    def item(x: float) -> Mirrored:
        return Mirrored(1, 2, model, "serving_default", {"x": np.array([x], np.float32)}, stable_out, 0.01)

    mirror.offer(item(1.0))
    assert entered.wait(30)  # the worker took it and is running the candidate
    mirror.offer(item(-1.0))  # queued (the queue holds one)
    for _ in range(3):
        mirror.offer(item(1.0))  # full: dropped at once, counted; offer never waits
    assert _value(metrics, M.SHADOW_REQUESTS + "_total", stable="1", candidate="2", outcome="dropped") == 3
    assert _value(metrics, M.SHADOW_PENDING) == 2
    release.set()
    assert mirror.wait_idle(30)
    mirror.close()
    labels = {"stable": "1", "candidate": "2"}
    counts = {o: _value(metrics, M.SHADOW_REQUESTS + "_total", **labels, outcome=o) for o in M.OUTCOMES}
    assert counts == {"compared": 1, "failed": 1, "dropped": 3}
    # Class 2's box moved to the other corner and class 3 appeared: 1 matched, 1 only stable, 2 only candidate.
    one = match(Detections.from_outputs(stable_out), Detections.from_outputs(cand_out), 0.3)
    assert (one.matched, one.only_reference, one.only_candidate) == (1, 1, 2)
    for kind, per in zip(M.KINDS, (1, 1, 2), strict=True):
        assert _value(metrics, M.SHADOW_DETECTIONS + "_total", **labels, kind=kind) == per * counts["compared"]
    assert _value(metrics, M.SHADOW_SCORE_DIFFERENCE + "_sum", **labels) == pytest.approx(0.2 * counts["compared"])
    shadow = {"version": "2", "role": M.ROLE_SHADOW}
    assert _value(metrics, M.ANSWERS + "_total", **shadow, code="INVALID_ARGUMENT") == 1
    assert _value(metrics, M.ANSWERS + "_total", **shadow, code="OK") == counts["compared"]
    assert _value(metrics, M.TOP_SCORE + "_sum", **shadow) == pytest.approx(0.8 * counts["compared"])
    assert _value(metrics, M.SHADOW_PENDING) == 0
    assert top_scores(stable_out) == pytest.approx([0.9]) and top_scores({}) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--canary", "2"], "--canary needs --canary-percent P"),
        (["--canary-percent", "5"], "--canary-percent needs --canary VERSION"),
        (["--shadow-percent", "5"], "--shadow-percent needs --shadow VERSION"),
        (["--shadow", "2", "--canary", "3", "--canary-percent", "5"], "name two candidates"),
        (["--canary", "2", "--canary-percent", "101"], "101.0 is not in the range 0<=x<=100"),
    ],
)
def test_serve_refuses_contradicting_split_flags(tmp_path, args, message):
    from detx.pipeline.cli import main

    result = CliRunner().invoke(main, ["serve", "--push-destination", str(tmp_path), "--port", "0", *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_serve_flags_give_the_server_its_fixed_split_and_the_mirror_its_min_score(tmp_path, monkeypatch):
    from detx.pipeline.cli import main
    from detx.serving.model_server import server as server_lib

    seen = []

    def refuse(config, *args, **kwargs):
        seen.append(config)
        raise RuntimeError("not started in this test")

    monkeypatch.setattr(server_lib, "ModelServer", refuse)
    args = ["--shadow", "2", "--canary", "2", "--canary-percent", "5", "--min-score", "0.5"]
    result = CliRunner().invoke(main, ["serve", "--push-destination", str(tmp_path), "--port", "0", *args])
    assert result.exit_code == 1 and "not started in this test" in result.output
    assert seen[0].traffic == FixedTraffic(2, shadow_percent=10.0, canary_percent=5.0)
    assert seen[0].mirror.min_score == 0.5


def test_a_fixed_split_served_over_grpc_canary_half_and_every_stable_answer_mirrored(tmp_path):
    """Version 3 (perfect) is stable, 2 (a perfect copy) the candidate, 1 (noisy) older: the copy agrees 100%."""
    dest, work = str(tmp_path / "models"), tmp_path / "work"
    work.mkdir()
    versions = [push_oracle(dest, str(work), jitter=0.1, keep=0.5), push_oracle(dest, str(work))]
    versions.append(push_oracle(dest, str(work)))
    assert versions == [1, 2, 3]
    config = ServerConfig(
        "detx",
        dest,
        port=portpicker.pick_unused_port(),
        poll_seconds=0.1,
        traffic=FixedTraffic(2, shadow_percent=100, canary_percent=50),
    )
    server = ModelServer(config)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
        examples = oracle_examples(4)
        answered = []
        for i in range(20):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "detx"
            request.model_spec.signature_name = "tf_example"
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto([examples[i % 4]]))
            answered.append(stub.Predict(request, timeout=60).model_spec.version.value)
        assert Counter(answered) == {2: 10, 3: 10}
        assert server.mirror.wait_idle(60)
        labels = {"stable": "3", "candidate": "2"}
        assert _value(server.metrics, M.SHADOW_REQUESTS + "_total", **labels, outcome="compared") == 10
        matched = _value(server.metrics, M.SHADOW_DETECTIONS + "_total", **labels, kind="matched")
        assert matched > 0
        assert _value(server.metrics, M.SHADOW_DETECTIONS + "_total", **labels, kind="only_stable") == 0
        assert _value(server.metrics, M.SHADOW_DETECTIONS + "_total", **labels, kind="only_candidate") == 0
        assert _value(server.metrics, M.SHADOW_SCORE_DIFFERENCE + "_sum", **labels) == 0
    finally:
        channel.close()
        server.stop(grace=0)
