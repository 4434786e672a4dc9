"""Predict and GetModelMetadata with TF Serving's checks and status codes, on a loaded SavedModel."""

from __future__ import annotations

import dataclasses
import functools
import io
import time
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from detx.serving import defaults
from detx.serving.model_server.batching import Batcher
from detx.serving.model_server.routing import Route, Router

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request the server refuses, with the gRPC code TF Serving would answer."""

    def __init__(self, code: grpc.StatusCode, message: str, route: Route | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.route = route  # the version the request was routed to, when it got that far


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_pixels: pixels over all images of one request (uint8 image tensors and encoded images).
    """

    max_pixels: int = defaults.MAX_PIXELS


def _route(router: Router, spec: Any, count: bool = True) -> Route:
    if spec.name != router.name:
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
    version = spec.version.value if spec.HasField("version") else None
    try:
        return router.route(version, spec.version_label, count)
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
        if array.ndim and not array.shape[0]:
            # A client's mistake, answered as one: past this point an empty batch fails inside the
            # model's post-processing and would come back as INTERNAL.
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input {alias!r} holds no images (shape {list(array.shape)}); send a batch of at least one",
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
        return _run(fn, inputs)

    try:
        outputs = run(arrays) if batcher is None else batcher.run(Batcher.key(version, signature, arrays), run, arrays)
    except tf.errors.InvalidArgumentError as e:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, e.message) from None
    return signature, arrays, outputs


def _run(fn: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def run_arrays(model: Any, signature: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs a version's signature on inputs another version already took (the shadow mirror: no parsing again).

    Raises:
        ServingError: the version has no such signature (FAILED_PRECONDITION) or takes other inputs
            (INVALID_ARGUMENT), as a client sending it the request would hear.
    """
    if signature not in model.signatures:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature}" not found.')
    fn = model.signatures[signature]
    specs: dict[str, tf.TensorSpec] = fn.structured_input_signature[1]
    for alias, array in arrays.items():
        spec = specs.get(alias)
        if spec is None or spec.dtype.as_numpy_dtype != array.dtype or not spec.shape.is_compatible_with(array.shape):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"input {alias!r} does not fit {signature!r}")
    if set(specs) != set(arrays):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"the signature {signature!r} takes {sorted(specs)}")
    try:
        return _run(fn, arrays)
    except tf.errors.InvalidArgumentError as e:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, e.message) from None


@dataclasses.dataclass(frozen=True)
class Answer:
    """One Predict answered.

    Attributes:
        response: the PredictResponse (its model_spec names the version that answered).
        route: where the request went (version, role, split).
        signature: the signature that ran.
        inputs: the request's inputs, as arrays.
        outputs: every output of the signature (before the request's output filter).
        seconds: the model's time for the request (checks, batching wait and run).
    """

    response: Any
    route: Route
    signature: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    seconds: float


def predict(router: Router, request: Any, limits: Limits, batcher: Batcher | None = None) -> Answer:
    """Routes one PredictRequest and runs it, in a batch with concurrent ones when a batcher is given.

    Raises:
        ServingError: with NOT_FOUND, FAILED_PRECONDITION or INVALID_ARGUMENT as TF Serving answers; past
            routing, it names the route. Any other failure is re-raised as INTERNAL with the route.
    """
    route = _route(router, request.model_spec)
    start = time.perf_counter()
    try:
        signature, arrays, outputs = run_request(route.model, route.version, request, limits, batcher)
    except ServingError as e:
        e.route = route
        raise
    except Exception as e:  # the servicer answers INTERNAL; the route lets the answer count against its version
        raise ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}", route) from e
    seconds = time.perf_counter() - start
    response = predict_pb2.PredictResponse()
    response.model_spec.name = router.name
    response.model_spec.version.value = route.version
    response.model_spec.signature_name = signature
    wanted = set(request.output_filter) or set(outputs)
    for key, value in outputs.items():
        if key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return Answer(response, route, signature, arrays, outputs, seconds)


# The outputs whose NaN or Inf the server counts (components/trainer/export.py names them).
FINITE_OUTPUTS = ("detection_scores", "detection_boxes")


def non_finite_images(outputs: dict[str, np.ndarray]) -> int:
    """Images (rows of the batch) whose detection scores or boxes hold any NaN or Inf (0 without those outputs)."""
    bad: np.ndarray | None = None
    for name in FINITE_OUTPUTS:
        value = outputs.get(name)
        if value is None or not np.issubdtype(np.asarray(value).dtype, np.floating) or np.ndim(value) == 0:
            continue
        rows = ~np.isfinite(np.asarray(value).reshape(len(value), -1)).all(axis=1)
        bad = rows if bad is None else bad | rows
    return 0 if bad is None else int(bad.sum())


@functools.lru_cache(maxsize=32)
def _signature_defs(path: str) -> Any:
    from tensorflow.python.tools import saved_model_utils

    return saved_model_utils.get_meta_graph_def(path, "serve").signature_def


def model_metadata(router: Router, request: Any) -> Any:
    """Runs one GetModelMetadataRequest ("signature_def" is the only field TF Serving supports)."""
    version = _route(router, request.model_spec, count=False).version
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field(s) {fields} not supported; ask for ['signature_def']"
        )
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = router.name
    response.model_spec.version.value = version
    defs = get_model_metadata_pb2.SignatureDefMap()
    for key, value in _signature_defs(router.manager.store.path(version)).items():
        defs.signature_def[key].CopyFrom(value)
    response.metadata["signature_def"].Pack(defs)
    return response
