"""A TF Serving PredictionService whose answer depends on orientation only: the box of the red block it sees.

It decodes `encoded_image` with the exported graph's own call
(`tf.io.decode_image(data, channels=3, expand_animations=False)`,
components/trainer/export.py), which ignores EXIF, so a photo that reaches it
sideways gets a box in the sideways frame: exactly what a real model would see.
A random-weight export cannot stand in here: its answers do not depend on the
image (the same boxes and scores for a scene and the scene turned by 90 degrees). It speaks TF
Serving's real protos and keeps every request, for tests that look at what a
client sent.
"""

from __future__ import annotations

from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from testing.data import red_box


class RedBlockDetector(prediction_service_pb2_grpc.PredictionServiceServicer):
    """One detection (class 1, score 0.9) at the red block, in normalized (ymin, xmin, ymax, xmax)."""

    def __init__(self) -> None:
        self.requests: list[predict_pb2.PredictRequest] = []
        self.seen: list[np.ndarray] = []  # the pixels each request decoded to

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        self.requests.append(request)
        if "input_tensor" in request.inputs:
            pixels = tf.make_ndarray(request.inputs["input_tensor"])[0]
        else:
            data = tf.make_ndarray(request.inputs["encoded_image"])[0]
            pixels = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        self.seen.append(pixels)
        height, width = pixels.shape[:2]
        found = red_box(pixels)
        boxes = np.zeros((1, 1, 4), np.float32)
        if found is not None:
            x0, y0, x1, y1 = found
            boxes[0, 0] = (y0 / height, x0 / width, y1 / height, x1 / width)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = 1
        outputs = {
            "detection_boxes": boxes,
            "detection_scores": np.full((1, 1), 0.9, np.float32),
            "detection_classes": np.ones((1, 1), np.float32),
            "num_detections": np.array([1.0 if found else 0.0], np.float32),
        }
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response


class _OneVersion(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus: version 1 is AVAILABLE (what `DetectionClient.status` and the notebook ask)."""

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = 1
        status.state = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")
        return response


def start() -> tuple[grpc.Server, RedBlockDetector, str]:
    """(the started server, its servicer, host:port) on loopback."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    detector = RedBlockDetector()
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(detector, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_OneVersion(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, detector, f"127.0.0.1:{port}"
