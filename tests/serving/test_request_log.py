"""`detx serve --request-log`: a real server logs image statistics and score profiles, never images by default."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from detx.components.data.images import array_brightness, image_statistics
from detx.components.evaluation import score_profile
from detx.components.model_store import ModelStore
from detx.serving.model_server.request_log import read_log, stats_examples
from tests.serving.server_process import Server

pytestmark = pytest.mark.e2e

AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")


def _jpeg(level: int, seed: int) -> bytes:
    pixels = np.clip(np.random.default_rng(seed).normal(level, 20, (96, 128, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _predict(channel, signature: str, alias: str, value) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "detx"
    request.model_spec.signature_name = signature
    request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)


def _wait_loaded(server: Server) -> None:
    def loaded() -> bool:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "detx"
        status = model_service_pb2_grpc.ModelServiceStub(server.channel).GetModelStatus(request, timeout=10)
        return any(v.state == AVAILABLE for v in status.model_version_status)

    server.wait_for(loaded, what="version 1 to load")


def test_every_sampled_request_is_logged_with_ingestion_statistics_and_its_score_profile(tmp_path, tiny_model):
    dest = str(tmp_path / "models" / "detx")
    ModelStore(dest).push(tiny_model, {})
    log_dir = str(tmp_path / "requests")
    server = Server(dest, "--request-log", log_dir, "--request-log-sample", "1")
    try:
        _wait_loaded(server)
        dark, bright = _jpeg(40, 1), _jpeg(200, 2)
        responses = [
            _predict(server.channel, "encoded_image", "encoded_image", np.array([dark, bright], dtype=object)),
        ]
        pixels = np.random.default_rng(3).integers(0, 255, (1, 90, 120, 3), dtype=np.uint8)
        responses.append(_predict(server.channel, "serving_default", "input_tensor", pixels))
    finally:
        assert server.stop() == 0  # SIGTERM writes what is queued before exiting
    records = list(read_log(log_dir))
    assert len(records) == 3
    assert {r.version for r in records} == {1} and {r.model for r in records} == {"detx"}
    # The same measurement as ingestion's detx/stats/brightness (so skew compares like with like).
    assert records[0].brightness == pytest.approx(image_statistics(dark)[2], abs=1e-3)
    assert records[1].brightness == pytest.approx(image_statistics(bright)[2], abs=1e-3)
    assert records[0].brightness < 80 < 160 < records[1].brightness
    assert (records[2].width, records[2].height) == (120, 90)
    assert records[2].brightness == pytest.approx(array_brightness(pixels[0]), abs=1e-3)
    # The score profile is the response's: the highest score and the confident count per image.
    expected = []
    for response in responses:
        scores = tf.make_ndarray(response.outputs["detection_scores"])
        counts = tf.make_ndarray(response.outputs["num_detections"])
        expected += [score_profile.image_profile(s, int(n)) for s, n in zip(scores, counts, strict=True)]
    assert [(round(r.top_score, 5), r.confident) for r in records] == [(round(t, 5), c) for t, c in expected]
    assert not os.path.exists(os.path.join(log_dir, "images"))  # images only when asked
    assert len(stats_examples(records)) == 3
    assert "logging 100% of requests" in server.log()


def test_unsampled_requests_are_not_logged_and_a_bad_sample_rate_is_refused(tmp_path):
    from detx.serving.model_server.request_log import RequestLog, RequestLogConfig

    with pytest.raises(ValueError, match="sample must be in"):
        RequestLogConfig(str(tmp_path), sample=0.0)
    log_dir = str(tmp_path / "requests")
    log = RequestLog(RequestLogConfig(log_dir, sample=0.05, keep_images=True), "detx")
    outputs = {"detection_scores": np.array([[0.9, 0.6, 0.2]]), "num_detections": np.array([2.0])}
    for i in range(40):
        log.offer(4, "encoded_image", {"encoded_image": np.array([_jpeg(120, i)], dtype=object)}, outputs)
    log.close()
    logged = list(read_log(log_dir))
    assert len(logged) < 15  # 5% of 40: a handful at most (P(>= 15) is about 1e-8)
    assert all((r.version, r.top_score, r.confident) == (4, 0.9, 2) for r in logged)
    images = os.listdir(os.path.join(log_dir, "images")) if logged else []
    assert len(images) == len(logged)  # --request-log-images keeps exactly the sampled ones
