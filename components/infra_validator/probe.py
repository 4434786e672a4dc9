"""What the InfraValidator asks a served candidate: real requests, answers compared with in-process ones, latency.

Answers are compared detection by detection rather than tensor by tensor:
two runs may order detections with nearly equal scores differently, which
is not a disagreement. A served detection matches an in-process one of the
same class whose score and box corners are each within the tolerance.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

# The detector's outputs (components/trainer/export.py); every signature returns them.
BOXES, SCORES, CLASSES, COUNT = "detection_boxes", "detection_scores", "detection_classes", "num_detections"
# Detections scoring below this are not compared: near-zero scores carry no decision and reorder freely.
_MIN_SCORE = 0.05
_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass
class Answers:
    """The outputs of each request, or its error."""

    outputs: list[dict[str, np.ndarray] | None]
    errors: list[str]


def describe(request: predict_pb2.PredictRequest) -> str:
    """The request's signature, for messages: `signature 'encoded_image'`."""
    return f"signature {request.model_spec.signature_name or 'serving_default'!r}"


def in_process(model: Any, requests: Sequence[predict_pb2.PredictRequest]) -> Answers:
    """Runs each request through the loaded SavedModel's signature in this process."""
    outputs: list[dict[str, np.ndarray] | None] = []
    errors = []
    for request in requests:
        try:
            fn = model.signatures[request.model_spec.signature_name or "serving_default"]
            inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
            outputs.append({k: v.numpy() for k, v in fn(**inputs).items()})
            errors.append("")
        except Exception as e:  # any failure is a finding about the candidate, not a crash of the step
            outputs.append(None)
            errors.append(f"{describe(request)} fails in process: {type(e).__name__}: {str(e)[:300]}")
    return Answers(outputs, errors)


def served(channel: grpc.Channel, requests: Sequence[predict_pb2.PredictRequest]) -> Answers:
    """Sends each request to the server once, in order."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    outputs: list[dict[str, np.ndarray] | None] = []
    errors = []
    for request in requests:
        try:
            response = stub.Predict(request, timeout=_TIMEOUT_SECONDS)
        except grpc.RpcError as e:
            outputs.append(None)
            errors.append(f"{describe(request)} failed in the server: {e.code().name}: {(e.details() or '')[:300]}")
        else:
            outputs.append({k: tf.make_ndarray(v) for k, v in response.outputs.items()})
            errors.append("")
    return Answers(outputs, errors)


def _detections(outputs: Mapping[str, np.ndarray]) -> list[tuple[int, float, np.ndarray]]:
    count = int(np.asarray(outputs[COUNT]).reshape(-1)[0])
    boxes = np.asarray(outputs[BOXES])[0][:count]
    scores = np.asarray(outputs[SCORES])[0][:count]
    classes = np.asarray(outputs[CLASSES])[0][:count]
    return [(int(c), float(s), b) for b, s, c in zip(boxes, scores, classes, strict=True)]


def difference(expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], tolerance: float) -> str:
    """What differs between a served and an in-process answer beyond `tolerance` ("" when nothing does).

    Every in-process detection scoring at least 0.05 (plus the tolerance) needs
    a served one of the same class within the tolerance, and the other way round.
    """
    missing = [name for name in (BOXES, SCORES, CLASSES, COUNT) if name not in actual]
    if missing:
        return f"the served answer lacks {', '.join(missing)}"

    def unmatched(ours: list[tuple[int, float, np.ndarray]], theirs: list[tuple[int, float, np.ndarray]]) -> str:
        used: set[int] = set()
        for cls, score, box in ours:
            if score < _MIN_SCORE + tolerance:
                continue
            for j, (c, s, b) in enumerate(theirs):
                if j not in used and c == cls and abs(s - score) <= tolerance and np.abs(b - box).max() <= tolerance:
                    used.add(j)
                    break
            else:
                return f"class {cls} score {score:.4f} box {np.round(box, 4).tolist()}"
        return ""

    want, got = _detections(expected), _detections(actual)
    lost = unmatched(want, got)
    if lost:
        return f"the server lost or changed the detection {lost} (tolerance {tolerance:g})"
    extra = unmatched(got, want)
    if extra:
        return f"the server added the detection {extra} (tolerance {tolerance:g})"
    return ""


def largest_difference(expected: Answers, actual: Answers) -> float:
    """The largest absolute difference between answers of equal shape (for the report; nan if none compare)."""
    diffs = []
    for want, got in zip(expected.outputs, actual.outputs, strict=True):
        if want is None or got is None:
            continue
        for name in (BOXES, SCORES):
            if name in got and np.shape(want[name]) == np.shape(got[name]):
                diffs.append(float(np.abs(np.asarray(want[name]) - np.asarray(got[name])).max(initial=0.0)))
    return max(diffs) if diffs else float("nan")


@dataclasses.dataclass(frozen=True)
class Latency:
    """Client-side latency of a load run, in milliseconds."""

    first_ms: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def load(
    channel: grpc.Channel, requests: Sequence[predict_pb2.PredictRequest], total: int, concurrency: int
) -> Latency:
    """One request alone (the first after the version became AVAILABLE), then `total` from `concurrency` threads.

    The requests cycle through `requests` (every signature), as a mixed client population would.
    """
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    start = time.perf_counter()
    stub.Predict(requests[0], timeout=_TIMEOUT_SECONDS)
    first_ms = (time.perf_counter() - start) * 1000
    times: list[float] = []
    errors = [0]
    counter = iter(range(total))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            begin = time.perf_counter()
            try:
                stub.Predict(requests[index % len(requests)], timeout=_TIMEOUT_SECONDS)
            except grpc.RpcError:
                with lock:
                    errors[0] += 1
                continue
            with lock:
                times.append((time.perf_counter() - begin) * 1000)

    threads = [threading.Thread(target=client, name=f"infra-client-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(times) or [float("nan")]
    p99 = ordered[min(len(ordered) - 1, int(np.ceil(0.99 * len(ordered))) - 1)]
    return Latency(first_ms, statistics.median(ordered), p99, len(times), errors[0])
