"""`detx serve` counts answers with NaN or Inf scores or boxes, per version: a Prometheus counter and GetModelStatus."""

import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from detx.components.model_store import ModelStore
from detx.serving.model_server.predict import non_finite_images
from tests.serving.server_process import Server

AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")


class _NaNOnBrightImages(tf.Module):
    """A detector whose scores are NaN for bright images (mean pixel above 127) and 0.5 otherwise."""

    def __init__(self):
        super().__init__()
        self.threshold = tf.Variable(127.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
    def detect(self, input_tensor):
        bright = tf.reduce_mean(tf.cast(input_tensor, tf.float32), axis=[1, 2, 3]) > self.threshold
        n = tf.shape(input_tensor)[0]
        scores = tf.where(bright[:, None], np.float32(np.nan), tf.fill([n, 1], 0.5))
        return {
            "detection_boxes": tf.tile(tf.constant([[[0.1, 0.1, 0.5, 0.5]]]), [n, 1, 1]),
            "detection_scores": scores,
            "detection_classes": tf.ones([n, 1]),
            "num_detections": tf.ones([n]),
        }


def _request(images):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "detx"
    request.inputs["input_tensor"].CopyFrom(tf.make_tensor_proto(images))
    return request


def _images(*brightness):
    return np.stack([np.full((32, 32, 3), b, np.uint8) for b in brightness])


def _count(metrics_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "detx_serving_non_finite_outputs":
            return {
                (s.labels["version"], s.labels["role"]): s.value for s in family.samples if s.name.endswith("_total")
            }
    return {}


def _status(channel):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "detx"
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return {v.version: (v.state, v.status.error_code, v.status.error_message) for v in response.model_version_status}


def test_images_with_nan_or_inf_scores_or_boxes_are_counted_per_row():
    finite = {"detection_scores": np.zeros((3, 2)), "detection_boxes": np.zeros((3, 2, 4))}
    assert non_finite_images(finite) == 0
    boxes = finite["detection_boxes"].copy()
    boxes[2, 1, 3] = np.inf
    scores = finite["detection_scores"].copy()
    scores[0, 0] = np.nan
    assert non_finite_images({**finite, "detection_boxes": boxes}) == 1
    assert non_finite_images({"detection_scores": scores, "detection_boxes": boxes}) == 2
    assert non_finite_images({"detection_classes": np.full((2, 1), np.nan)}) == 0  # not scores nor boxes


@pytest.mark.e2e
def test_detx_serve_counts_nan_answers_by_version_and_reports_them_in_get_model_status(tmp_path):
    model_dir = str(tmp_path / "model")
    module = _NaNOnBrightImages()
    tf.saved_model.save(module, model_dir, signatures={"serving_default": module.detect})
    dest = str(tmp_path / "models")
    ModelStore(dest).push(model_dir, {})
    server = Server(dest)
    try:
        server.wait_for(lambda: _status(server.channel).get(1, (0,))[0] == AVAILABLE, what="version 1")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
        dark = stub.Predict(_request(_images(10)), timeout=60)
        assert tf.make_ndarray(dark.outputs["detection_scores"]).tolist() == [[0.5]]
        assert _count(server.metrics_port).get(("1", "stable"), 0) == 0
        assert _status(server.channel)[1] == (AVAILABLE, 0, "")
        # Two bright images of three: answered (NaN reaches the client as it would from TF Serving) and counted.
        mixed = stub.Predict(_request(_images(200, 10, 250)), timeout=60)
        assert np.isnan(tf.make_ndarray(mixed.outputs["detection_scores"])[[0, 2]]).all()
        assert _count(server.metrics_port) == {("1", "stable"): 2.0}
        state, code, message = _status(server.channel)[1]
        assert (state, code) == (AVAILABLE, 0)  # still serving, and not an error code: only reported
        assert message == (
            "2 answered image(s) with NaN or Inf in detection_scores or detection_boxes since the server started "
            "(metric detx_serving_non_finite_outputs_total); the version keeps serving: retrain or roll back"
        )
    finally:
        server.stop()
