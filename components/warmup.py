"""TF Serving's warm-up file: PredictionLog records a model server replays before a version takes traffic.

TF Serving reads `<version>/assets.extra/tf_serving_warmup_requests`, a
TFRecord file of `tensorflow.serving.PredictionLog` protos, and runs every
request through the freshly loaded version before it marks it AVAILABLE, so
the first client request does not pay for graph initialization
(tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc; at most
1000 records, each replayed `num_request_iterations` times, default 1).
`detx serve` replays the same file the same way.

detx builds the records from real eval-split examples, one request per
signature of the exported detector: `serving_default` (a decoded uint8 image),
`encoded_image` (the image file's bytes) and `tf_example` (the serialized
tf.Example), so every signature's graph is warm.

The InfraValidator writes the file into the model it blesses, the Pusher's
numeric check builds its requests here, and `detx serve` replays it
(serving/model_server/warmup_replay.py): one home, below both the components
and the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from detx.components.data import features
from detx.components.trainer.export import ENCODED_IMAGE, SERVING_DEFAULT, TF_EXAMPLE

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# TF Serving refuses a warm-up file with more records (kMaxNumRecords in saved_model_warmup_util.cc).
MAX_RECORDS = 1000
# The input name of each signature (components/trainer/export.py's input_signature names).
INPUT_NAMES = {SERVING_DEFAULT: "input_tensor", ENCODED_IMAGE: "encoded_image", TF_EXAMPLE: "examples"}
SIGNATURES = tuple(INPUT_NAMES)


class WarmupError(ValueError):
    """A warm-up file cannot be built or read; the message says why."""


def _request(model_name: str, signature: str, value: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    request.inputs[INPUT_NAMES[signature]].CopyFrom(tf.make_tensor_proto(value))
    return request


def requests_for_example(serialized: bytes, model_name: str) -> list[predict_pb2.PredictRequest]:
    """One PredictRequest per signature, all asking about the image of one tf.Example.

    Args:
        serialized: a tf.Example in detx's layout (`image/encoded` holds the image file).
        model_name: the name the requests address (TF Serving ignores it while warming up).

    Raises:
        WarmupError: the example has no decodable image.
    """
    example = tf.train.Example.FromString(serialized)
    encoded = example.features.feature[features.ENCODED].bytes_list.value
    if not encoded:
        raise WarmupError(f"an example has no {features.ENCODED}; warm-up requests need real images")
    pixels = tf.io.decode_image(encoded[0], channels=3, expand_animations=False).numpy()
    return [
        _request(model_name, SERVING_DEFAULT, pixels[np.newaxis]),
        _request(model_name, ENCODED_IMAGE, np.array([encoded[0]], dtype=object)),
        _request(model_name, TF_EXAMPLE, np.array([serialized], dtype=object)),
    ]


def build(
    examples: Iterable[bytes], model_name: str, max_records: int = MAX_RECORDS
) -> list[predict_pb2.PredictRequest]:
    """Requests for every signature from serialized tf.Examples, at most `max_records` in all.

    Raises:
        WarmupError: no examples were given.
    """
    requests: list[predict_pb2.PredictRequest] = []
    for serialized in examples:
        if len(requests) + len(SIGNATURES) > max_records:
            break
        requests.extend(requests_for_example(serialized, model_name))
    if not requests:
        raise WarmupError("no examples to build warm-up requests from; the eval split is empty")
    return requests


def write(path: str, requests: Sequence[predict_pb2.PredictRequest]) -> str:
    """Writes `requests` as PredictionLog records to `path` (a version's WARMUP_FILE) and returns it.

    Raises:
        WarmupError: more records than TF Serving accepts.
    """
    if len(requests) > MAX_RECORDS:
        raise WarmupError(f"{len(requests)} warm-up records; TF Serving accepts at most {MAX_RECORDS}")
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(request)
            writer.write(log.SerializeToString())
    return path


def read(path: str) -> Iterator[predict_pb2.PredictRequest]:
    """The PredictRequests of a warm-up file (TF Serving's reader accepts Predict, Classify, Regress, MultiInference).

    Raises:
        WarmupError: a record is not a PredictionLog with a Predict request, or there are too many.
    """
    for count, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), start=1):
        if count > MAX_RECORDS:
            raise WarmupError(f"{path} has more than {MAX_RECORDS} records; TF Serving refuses such a file")
        try:
            log = prediction_log_pb2.PredictionLog.FromString(record)
        except Exception as e:  # protobuf raises DecodeError, a private subclass
            raise WarmupError(f"{path}: record {count} is not a PredictionLog ({e})") from None
        if log.WhichOneof("log_type") != "predict_log":
            raise WarmupError(
                f"{path}: record {count} is a {log.WhichOneof('log_type') or 'empty log'}; detx models take Predict"
            )
        yield log.predict_log.request


def path_in(version_dir: str) -> str:
    """Where TF Serving looks for the warm-up file of a version directory."""
    return os.path.join(version_dir, WARMUP_FILE)
