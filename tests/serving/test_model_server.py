"""`detx serve` behaves like TF Serving where clients and operators can tell: a real process on loopback.

The client side uses only the `tensorflow-serving-api` stubs and protos.
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from detx.components.model_store import ModelStore
from tests.serving.conftest import export_tiny
from tests.serving.server_process import Server

pytestmark = pytest.mark.e2e

AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")


def _image(h=120, w=160):
    return np.random.default_rng(0).integers(0, 255, (1, h, w, 3), dtype=np.uint8)


def _request(image=None, name="detx", signature="", version=None, alias="input_tensor"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[alias].CopyFrom(tf.make_tensor_proto(_image() if image is None else image))
    return request


def _status(channel, name="detx"):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)


def _serve(dest, tiny_model):
    """`detx serve` of a push destination holding the tiny model as version 1, once version 1 is loaded."""
    ModelStore(dest).push(tiny_model, {})
    server = Server(dest, "--max-pixels", "10000000")
    try:
        server.wait_for(
            lambda: any(v.state == AVAILABLE for v in _status(server.channel).model_version_status),
            what="version 1 to load",
        )
    except BaseException:
        server.stop()
        raise
    return server


def _stop(server):
    assert server.stop() == 0  # SIGTERM: graceful, exit status 0
    assert "detx serve: stopped" in server.log()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    """The module's server: it serves version 1 only (no test that uses it pushes or removes versions)."""
    server = _serve(str(tmp_path_factory.mktemp("serve") / "models" / "detx"), tiny_model)
    yield server
    _stop(server)


@pytest.fixture
def own_server(tmp_path, tiny_model):
    """A server for one test that changes its versions, so that the module's server stays at version 1."""
    server = _serve(str(tmp_path / "models" / "detx"), tiny_model)
    yield server
    _stop(server)


def test_predict_serving_default_gives_zoo_format_outputs(served):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    response = stub.Predict(_request(), timeout=30)
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    assert set(outputs) == {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}
    assert outputs["detection_boxes"].shape == (1, 100, 4) and outputs["detection_scores"].shape == (1, 100)
    assert response.model_spec.version.value == 1 and response.model_spec.signature_name == "serving_default"
    n = int(outputs["num_detections"][0])
    classes = outputs["detection_classes"][0, :n]
    assert ((classes >= 1) & (classes <= 3)).all()  # 1-based label ids, like the Zoo


def test_metadata_and_status(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "detx"
    request.metadata_field.append("signature_def")
    response = prediction_service_pb2_grpc.PredictionServiceStub(served.channel).GetModelMetadata(request, timeout=10)
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    assert {"serving_default", "encoded_image", "tf_example"} <= set(defs.signature_def)
    assert defs.signature_def["serving_default"].inputs["input_tensor"].dtype == tf.uint8.as_datatype_enum
    status = _status(served.channel)
    assert [(v.version, v.state) for v in status.model_version_status] == [(1, AVAILABLE)]


@pytest.mark.parametrize(
    "make_request,code,text",
    [
        (lambda: _request(name="other"), grpc.StatusCode.NOT_FOUND, "Servable not found"),
        (lambda: _request(version=7), grpc.StatusCode.NOT_FOUND, "Specific(detx, 7)"),
        (lambda: _request(signature="nope"), grpc.StatusCode.FAILED_PRECONDITION, 'signature key "nope" not found'),
        (lambda: _request(alias="images"), grpc.StatusCode.INVALID_ARGUMENT, "not found in signature"),
        (lambda: _request(image=_image().astype(np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "to be uint8"),
        (lambda: _request(image=_image()[0]), grpc.StatusCode.INVALID_ARGUMENT, "has shape [120, 160, 3]"),
        (
            lambda: _request(image=np.zeros((0, 64, 64, 3), np.uint8)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "holds no images",
        ),
        (lambda: _request(image=np.zeros((1, 5000, 5000, 3), np.uint8)), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        (
            lambda: _request(image=np.zeros((2, 2500, 2500, 3), np.uint8)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "more than this server's limit",
        ),
        (
            lambda: _request(image=np.array([b"not an image"]), signature="encoded_image", alias="encoded_image"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a JPEG or PNG",
        ),
    ],
    ids=["model", "version", "signature", "alias", "dtype", "shape", "empty-batch", "size", "pixels", "not-an-image"],
)
def test_bad_requests_get_tf_serving_codes_and_the_server_stays_up(served, make_request, code, text):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(make_request(), timeout=30)
    assert err.value.code() == code, err.value.details()
    assert text in (err.value.details() or "")
    assert stub.Predict(_request(), timeout=30).model_spec.version.value >= 1  # still serving


def test_unimplemented_methods_and_metrics(served):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    # The requests whose counters are checked below are this test's own: one answered, one refused.
    assert stub.Predict(_request(), timeout=30).model_spec.version.value == 1
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(_request(signature="nope"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        stub.Classify(classification_pb2.ClassificationRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with urllib.request.urlopen(f"http://127.0.0.1:{served.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'detx_serving_requests_total{code="OK",method="Predict",model="detx"}' in text
    assert 'code="FAILED_PRECONDITION"' in text and "detx_serving_request_latency_seconds_bucket" in text
    assert 'detx_serving_model_version_state{model="detx",state="AVAILABLE",version="1"} 1.0' in text


def test_new_version_swaps_in_without_failed_requests_and_corrupt_ones_never_serve(own_server, tmp_path):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(own_server.channel)
    store = ModelStore(own_server.push_destination)
    seen, failures, stop = set(), [], threading.Event()

    def client_loop():
        while not stop.is_set():
            try:
                seen.add(stub.Predict(_request(), timeout=30).model_spec.version.value)
            except grpc.RpcError as e:
                failures.append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=client_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        new = store.push(export_tiny(str(tmp_path / "v2"), seed=1), {})
        own_server.wait_for(lambda: new.version in seen, what="the new version to answer")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and new.version in seen
    own_server.wait_for(
        lambda: (
            [v.version for v in _status(own_server.channel).model_version_status if v.state == AVAILABLE]
            == [new.version]
        ),
        what="the old version to unload",
    )

    # Corrupt versions, pushed one after the other (with the latest-version policy only the newest is tried):
    # each must leave the good version serving and show its error in GetModelStatus.
    good = new.version

    def errors():
        return {
            v.version: v.status.error_message
            for v in _status(own_server.channel).model_version_status
            if v.status.error_message
        }

    truncated = store.push(new.path, {})
    variables = os.path.join(truncated.path, "variables")
    for name in os.listdir(variables):
        with open(os.path.join(variables, name), "r+b") as f:
            f.truncate(10)
    own_server.wait_for(lambda: truncated.version in errors(), what="the truncated version's error")
    garbage = store.push(new.path, {})
    with open(os.path.join(garbage.path, "saved_model.pb"), "wb") as f:
        f.write(b"this is not a protobuf")
    own_server.wait_for(lambda: garbage.version in errors(), what="the garbage version's error")
    empty = store.next_version()
    os.makedirs(os.path.join(own_server.push_destination, str(empty)))
    own_server.wait_for(lambda: empty in errors(), what="the empty version's status")
    assert "no saved_model.pb" in errors()[empty] and "Error parsing message" in errors()[garbage.version]
    response = stub.Predict(_request(), timeout=30)
    assert response.model_spec.version.value == good  # the last good version still answers
    shutil.rmtree(os.path.join(own_server.push_destination, str(empty)))


def test_detx_predict_prints_labelled_json_draws_boxes_and_explains_errors(served, tmp_path):
    import json

    from click.testing import CliRunner

    from detx.pipeline.cli import main
    from detx.serving.client import encode_png

    image = tmp_path / "shapes.png"
    image.write_bytes(encode_png(_image(96, 128)[0]))
    target = f"127.0.0.1:{served.port}"
    base = [
        "predict",
        str(image),
        "--server",
        target,
        "--push-destination",
        served.push_destination,
        "--min-score",
        "0",
    ]
    for extra in ([], ["--raw"]):
        result = CliRunner().invoke(main, [*base, *extra, "--draw", str(tmp_path / "drawn")])
        assert result.exit_code == 0, result.output
        record = json.loads(result.output.strip().splitlines()[-1])
        assert record["version"] >= 1 and record["model"] == "detx" and len(record["detections"]) > 0
        assert {d["label"] for d in record["detections"]} <= {"circle", "square", "triangle"}  # the model's label map
        assert os.path.getsize(record["drawn"]) > 0
    result = CliRunner().invoke(main, [*base, "--model", "nope"])
    assert result.exit_code == 1 and "NOT_FOUND" in result.output and "detx models" in result.output
    result = CliRunner().invoke(
        main, ["predict", str(image), "--server", "127.0.0.1:1", "--retries", "1", "--timeout", "2"]
    )
    assert result.exit_code == 1 and "UNAVAILABLE" in result.output and "is it running" in result.output


def test_a_request_past_its_deadline_fails_and_the_server_stays_up(served):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(served.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(_request(np.zeros((1, 1200, 1600, 3), np.uint8)), timeout=0.001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert stub.Predict(_request(), timeout=30).model_spec.version.value >= 1
