"""`detx serve` replays a version's warm-up file before the version serves, and refuses a bad one, as TF Serving does.

TF Serving's rules (tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc): no file, no warm-up;
every record runs before the version is AVAILABLE; more than 1000 records, or a request that fails, fail the load.
"""

from __future__ import annotations

import os
import shutil
import urllib.request

import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from detx.components import warmup
from detx.components.data.synth import SynthConfig, generate_image, od_api_example
from detx.components.model_store import ModelStore
from detx.serving.model_server.predict import Limits
from detx.serving.model_server.warmup_replay import WarmupReplayError, replay
from tests.serving.server_process import Server

AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")


def _requests() -> list[predict_pb2.PredictRequest]:
    """components/warmup.py's requests for one small real image: one per signature (3)."""
    config = SynthConfig(num_images=1, seed=3, width=96, height=64, min_size=16, max_size=40)
    return warmup.build([od_api_example(generate_image(config, 1)).SerializeToString()], "detx")


def _write_warmup(version_dir: str, requests: list[predict_pb2.PredictRequest]) -> str:
    """Writes `requests` as `version_dir`'s warm-up file, with no limit on their number (unlike warmup.write)."""
    path = warmup.path_in(version_dir)
    os.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            writer.write(prediction_log_pb2.PredictionLog(predict_log={"request": request}).SerializeToString())
    return path


def _with_warmup(model_dir: str, dest: str, requests: list[predict_pb2.PredictRequest]) -> str:
    """A copy of `model_dir` with a warm-up file holding `requests`, ready to push."""
    shutil.copytree(model_dir, dest)
    _write_warmup(dest, requests)
    return dest


def _wrong_input(request: predict_pb2.PredictRequest) -> predict_pb2.PredictRequest:
    """`request` (a serving_default one) with its image under an input name the signature does not have."""
    wrong = predict_pb2.PredictRequest()
    wrong.CopyFrom(request)
    wrong.inputs["image"].CopyFrom(wrong.inputs.pop("input_tensor"))
    return wrong


def _statuses(server: Server) -> dict[int, tuple[int, str]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "detx"
    response = model_service_pb2_grpc.ModelServiceStub(server.channel).GetModelStatus(request, timeout=10)
    return {v.version: (v.state, v.status.error_message) for v in response.model_version_status}


def _served_version(server: Server, image_request: predict_pb2.PredictRequest) -> int:
    response = prediction_service_pb2_grpc.PredictionServiceStub(server.channel).Predict(image_request, timeout=60)
    return int(response.model_spec.version.value)


def _metrics(server: Server) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def test_warmup_replays_before_available_and_a_bad_file_fails_the_load(tiny_model, tmp_path):
    requests = _requests()
    store = ModelStore(str(tmp_path / "models" / "detx"))
    v1 = store.push(tiny_model, {})  # no warm-up file: no warm-up
    server = Server(store.root)
    try:
        server.wait_for(lambda: _statuses(server).get(1, (0, ""))[0] == AVAILABLE, what="version 1 to load")
        assert f"no warm-up file at {warmup.path_in(v1.path)}" in server.log()

        v2 = store.push(_with_warmup(tiny_model, str(tmp_path / "warm"), requests), {})
        server.wait_for(lambda: _statuses(server).get(2, (0, ""))[0] == AVAILABLE, what="version 2 to load")
        log = server.log().splitlines()
        done = f"warm-up of {v2.path}: replayed 3 records (1 time(s) each)"
        replayed = [i for i, line in enumerate(log) if done in line]
        available = [i for i, line in enumerate(log) if "model detx version 2 is available" in line]
        # One thread writes both lines: the replay ends inside the load, and the version manager logs
        # "is available" just before it sets AVAILABLE, the only state GetModelStatus can then report.
        # So the order of the two lines shows that no client could see version 2 AVAILABLE before its
        # warm-up was over, whatever the timing.
        assert len(replayed) == 1 and len(available) == 1 and replayed[0] < available[0], "\n".join(log)
        text = _metrics(server)
        assert 'detx_serving_warmup_records_total{model="detx"} 3.0' in text
        assert 'detx_serving_warmup_seconds_count{model="detx",status="OK"} 1.0' in text
        assert _served_version(server, requests[0]) == 2

        # A request for a signature the model does not have: the load fails with the reason in
        # GetModelStatus, the version never becomes AVAILABLE, and version 2 keeps serving.
        no_signature = predict_pb2.PredictRequest()
        no_signature.CopyFrom(requests[0])
        no_signature.model_spec.signature_name = "nope"
        v3 = store.push(_with_warmup(tiny_model, str(tmp_path / "nope"), [no_signature, *requests]), {})
        server.wait_for(lambda: _statuses(server).get(3, (0, ""))[1] != "", what="version 3's error")
        state, error = _statuses(server)[3]
        assert state != AVAILABLE and error == (
            f"WarmupReplayError: warm-up record 1 of {warmup.path_in(v3.path)} failed (FAILED_PRECONDITION): "
            'Serving signature key "nope" not found; fix or remove the warm-up file: '
            "the version does not serve until its warm-up succeeds"
        )
        assert "model detx version 3 is available" not in server.log()
        assert _statuses(server)[2][0] == AVAILABLE and _served_version(server, requests[0]) == 2
        text = _metrics(server)
        assert 'detx_serving_warmup_seconds_count{model="detx",status="FAILED_PRECONDITION"} 1.0' in text
        assert 'detx_serving_warmup_records_total{model="detx"} 3.0' in text  # the bad record came first
    finally:
        server.stop()


class _Counting:
    """A loaded SavedModel whose signatures count their calls (everything else is the real model's)."""

    def __init__(self, model, calls):
        self.signatures = {}
        for name, fn in model.signatures.items():
            self.signatures[name] = _CountingFunction(fn, name, calls)


class _CountingFunction:
    def __init__(self, fn, name, calls):
        self._fn, self._name, self._calls = fn, name, calls
        self.structured_input_signature = fn.structured_input_signature
        self.structured_outputs = fn.structured_outputs

    def __call__(self, **inputs):
        self._calls.append(self._name)
        return self._fn(**inputs)


def test_replay_runs_each_record_num_request_iterations_times_and_refuses_bad_files(tiny_model, tmp_path):
    requests = _requests()
    calls: list[str] = []
    model = _Counting(tf.saved_model.load(tiny_model), calls)
    assert replay(model, tiny_model, Limits()) is None and calls == []  # no file: no warm-up

    def version(number: int, records: list[predict_pb2.PredictRequest]) -> str:
        version_dir = str(tmp_path / str(number))
        _write_warmup(version_dir, records)
        return version_dir

    done = replay(model, version(1, requests), Limits(), iterations=2)
    assert done is not None and (done.records, done.iterations) == (3, 2)
    signatures = [r.model_spec.signature_name for r in requests]
    assert calls == [s for s in signatures for _ in range(2)]  # each record twice in a row, in file order

    # A wrong input name after three good records: the error names the record; three were replayed.
    calls.clear()
    bad = version(2, [*requests, _wrong_input(requests[0])])
    with pytest.raises(WarmupReplayError) as e:
        replay(model, bad, Limits())
    assert str(e.value) == (
        f"warm-up record 4 of {warmup.path_in(bad)} failed (INVALID_ARGUMENT): input tensor alias(es) ['image'] "
        "not found in signature; missing ['input_tensor']; the signature takes ['input_tensor']; "
        "fix or remove the warm-up file: the version does not serve until its warm-up succeeds"
    )
    assert (e.value.status, e.value.records, calls) == ("INVALID_ARGUMENT", 3, signatures)

    # 1001 records: refused before any runs (TF Serving runs 1000, then fails; the outcome is the same).
    calls.clear()
    many = version(3, [requests[2]] * (warmup.MAX_RECORDS + 1))  # tf_example requests: a small file
    with pytest.raises(WarmupReplayError, match=r"has more than 1000 records, the most TF Serving accepts; fix or"):
        replay(model, many, Limits())
    assert calls == []

    with open(warmup.path_in(many), "wb") as f:
        f.write(b"not a TFRecord file at all, just some bytes")
    with pytest.raises(WarmupReplayError, match="Please verify your warmup data is in TFRecord format") as e:
        replay(model, many, Limits())
    assert e.value.status == "DATA_LOSS"
