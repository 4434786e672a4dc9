"""Predict and GetModelMetadata with TF Serving's checks and status codes, on a loaded SavedModel."""

from __future__ import annotations

import dataclasses
import functools
import io
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from detx.serving.model_server.batching import Batcher
from detx.serving.model_server.request_log import RequestLog
from detx.serving.model_server.versions import VersionManager

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request the server refuses, with the gRPC code TF Serving would answer."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_pixels: pixels over all images of one request (uint8 image tensors and encoded images).
    """

    max_pixels: int = 50_000_000


def _model(manager: VersionManager, spec: Any) -> tuple[int, Any]:
    if spec.name != manager.name:
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
    version = spec.version.value if spec.HasField("version") else None
    try:
        return manager.resolve(version, spec.version_label)
    except LookupError as e:
        raise ServingError(grpc.StatusCode.NOT_FOUND, str(e)) from None


def _pixels(alias: str, array: np.ndarray, dtype: tf.DType) -> int:
    """Pixels an input asks the model to process (0 for inputs that are not images)."""
    if dtype == tf.uint8 and array.ndim == 4:
        return int(np.prod(array.shape[:3]))
    if dtype == tf.string and alias in ("encoded_image", "image_bytes"):
        from PIL import Image

        total = 0
        for data in array.reshape(-1):
            try:
                with Image.open(io.BytesIO(data)) as image:  # reads the header only
                    total += image.width * image.height
            except Exception:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"input {alias!r} holds bytes that are not a JPEG or PNG image"
                ) from None
        return total
    return 0


def _inputs(fn: Any, request: Any, limits: Limits) -> dict[str, np.ndarray]:
    specs: dict[str, tf.TensorSpec] = fn.structured_input_signature[1]
    unknown = sorted(set(request.inputs) - set(specs))
    missing = sorted(set(specs) - set(request.inputs))
    if unknown or missing:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input tensor alias(es) {unknown} not found in signature; missing {missing}; "
            f"the signature takes {sorted(specs)}",
        )
    arrays, pixels = {}, 0
    for alias, proto in request.inputs.items():
        spec = specs[alias]
        if proto.dtype != spec.dtype.as_datatype_enum:
            given = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "an unset dtype"
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expects arg {alias!r} to be {spec.dtype.name} but {given} is provided",
            )
        try:
            array = tf.make_ndarray(proto)
        except Exception as e:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"input {alias!r} is not a valid tensor: {e}"
            ) from None
        if not spec.shape.is_compatible_with(array.shape):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input {alias!r} has shape {list(array.shape)}; the signature expects {spec.shape}",
            )
        pixels += _pixels(alias, array, spec.dtype)
        arrays[alias] = array
    if pixels > limits.max_pixels:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request holds {pixels} pixels, more than this server's limit of {limits.max_pixels}; "
            "send fewer or smaller images",
        )
    return arrays


def run_request(
    model: Any, version: int, request: Any, limits: Limits, batcher: Batcher | None = None
) -> tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Checks one PredictRequest against a loaded version's signature and runs it.

    The Predict path and the warm-up replay (warmup_replay.py) both run requests
    through here, so a warm-up record meets exactly the checks a client request does.

    Args:
        model: the loaded SavedModel.
        version: its number (batches never mix versions).
        request: a PredictRequest; its model_spec's name and version are not looked at.
        limits: what one request may ask for.
        batcher: batch with concurrent requests (None: run alone).

    Returns:
        The signature name, the request's inputs and the outputs, as arrays.

    Raises:
        ServingError: with FAILED_PRECONDITION or INVALID_ARGUMENT as TF Serving answers.
    """
    signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
    if signature not in model.signatures:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature}" not found.')
    fn = model.signatures[signature]
    arrays = _inputs(fn, request, limits)
    unknown_outputs = sorted(set(request.output_filter) - set(fn.structured_outputs))
    if unknown_outputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"output tensor alias(es) {unknown_outputs} not found in signature"
        )

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}

    try:
        outputs = run(arrays) if batcher is None else batcher.run(Batcher.key(version, signature, arrays), run, arrays)
    except tf.errors.InvalidArgumentError as e:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, e.message) from None
    return signature, arrays, outputs


def predict(
    manager: VersionManager,
    request: Any,
    limits: Limits,
    batcher: Batcher | None = None,
    request_log: RequestLog | None = None,
) -> Any:
    """Runs one PredictRequest, in a batch with concurrent ones when a batcher is given.

    A request log, when given, is offered every successful prediction (it keeps a sample).

    Raises:
        ServingError: with NOT_FOUND, FAILED_PRECONDITION or INVALID_ARGUMENT as TF Serving answers.
    """
    version, model = _model(manager, request.model_spec)
    signature, arrays, outputs = run_request(model, version, request, limits, batcher)
    if request_log is not None:
        request_log.offer(version, signature, arrays, outputs)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = manager.name
    response.model_spec.version.value = version
    response.model_spec.signature_name = signature
    wanted = set(request.output_filter) or set(outputs)
    for key, value in outputs.items():
        if key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return response


@functools.lru_cache(maxsize=32)
def _signature_defs(path: str) -> Any:
    from tensorflow.python.tools import saved_model_utils

    return saved_model_utils.get_meta_graph_def(path, "serve").signature_def


def model_metadata(manager: VersionManager, request: Any) -> Any:
    """Runs one GetModelMetadataRequest ("signature_def" is the only field TF Serving supports)."""
    version, _ = _model(manager, request.model_spec)
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field(s) {fields} not supported; ask for ['signature_def']"
        )
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = manager.name
    response.model_spec.version.value = version
    defs = get_model_metadata_pb2.SignatureDefMap()
    for key, value in _signature_defs(manager.store.path(version)).items():
        defs.signature_def[key].CopyFrom(value)
    response.metadata["signature_def"].Pack(defs)
    return response
