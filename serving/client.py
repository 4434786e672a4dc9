"""A gRPC prediction client for detx models, on TF Serving's API: works with `detx serve` and TF Serving alike.

    client = DetectionClient("localhost:8500")
    result = client.predict(open("street.jpg", "rb").read())
    for d in result.detections(min_score=0.3): print(d.label, d.score, d.box)

Deadlines on every call, retries with backoff when the server is UNAVAILABLE
(starting, restarting, behind a load balancer), and a message for every status
code that says what to do.

Phone photos: the client turns an image whose EXIF orientation is not 1 upright
before it is sent, so the model sees it as a person does and the boxes come
back in the displayed frame (the frame `draw`, viewers and browsers use).
This happens here, in the client, because the server cannot do it: TensorFlow's
image decoders, and so the exported graph, ignore EXIF, and TF Serving runs
only that graph, never detx's Python. Parsing EXIF inside the graph would mean
a TIFF/IFD reader written in tf.strings ops in every exported model; until
then, any other TF Serving client (REST, Go, Java) must turn photos upright
before sending them to `encoded_image`, as this one does. Upright images travel
byte for byte unchanged.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from typing import Any

import grpc
import numpy as np

from detx.components.data.images import upright, upright_image
from detx.serving import defaults

ENCODED_IMAGE = "encoded_image"
SERVING_DEFAULT = "serving_default"

_ADVICE = {
    grpc.StatusCode.NOT_FOUND: "the server does not serve this model or version; check --model/--version/--label "
    "(`detx models` lists versions)",
    grpc.StatusCode.FAILED_PRECONDITION: "the model has no such signature; detx models have serving_default, "
    "encoded_image and tf_example",
    grpc.StatusCode.INVALID_ARGUMENT: "the server refused the input",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the request is larger than the server accepts; send smaller images",
    grpc.StatusCode.DEADLINE_EXCEEDED: "no answer within the deadline; raise --timeout or check the server's load",
    grpc.StatusCode.UNAVAILABLE: "no server answered; is it running, and is the address right?",
    grpc.StatusCode.UNIMPLEMENTED: "the server does not implement this method",
    grpc.StatusCode.UNAUTHENTICATED: "the server wants credentials (TLS client certificate)",
}


class PredictionError(RuntimeError):
    """A failed call: the gRPC code, the server's words, and what to do."""

    def __init__(self, code: grpc.StatusCode, details: str, target: str) -> None:
        advice = _ADVICE.get(code, "unexpected server error")
        super().__init__(f"{target}: {code.name}: {details or '(no details)'} -- {advice}")
        self.code = code
        self.details = details


@dataclasses.dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes:
        label: class name (from the label map, or "class_<id>").
        class_id: 1-based label id.
        score: confidence.
        box: normalized (ymin, xmin, ymax, xmax).
    """

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        ymin, xmin, ymax, xmax = self.box
        return {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box": {"ymin": round(ymin, 4), "xmin": round(xmin, 4), "ymax": round(ymax, 4), "xmax": round(xmax, 4)},
        }


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """The detections of one image and which model version gave them."""

    model: str
    version: int
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    label_names: dict[int, str] = dataclasses.field(default_factory=dict)

    def detections(self, min_score: float = 0.0) -> list[Detection]:
        """Detections at or above `min_score`, best first."""
        out = []
        for box, score, cls in zip(self.boxes, self.scores, self.classes, strict=True):
            if score >= min_score:
                class_id = int(cls)
                label = self.label_names.get(class_id, f"class_{class_id}")
                out.append(Detection(label, class_id, float(score), tuple(float(v) for v in box)))  # type: ignore[arg-type]
        return out


class DetectionClient:
    """Calls a detx model over TF Serving's gRPC API.

    Args:
        target: host:port.
        model: model name.
        version: a specific version (None: the served one).
        label: a version label ("stable", "canary") instead of a version.
        timeout: seconds per call (the gRPC deadline).
        retries: extra tries when the server is UNAVAILABLE.
        backoff: seconds before the first retry, doubled each time.
        tls_ca: PEM of the server's CA: use TLS.
        label_names: class id -> name, for readable results.
        max_message_mb: largest message the client sends or accepts.
    """

    def __init__(
        self,
        target: str,
        model: str = "detx",
        version: int | None = None,
        label: str = "",
        timeout: float = defaults.CLIENT_TIMEOUT_SECONDS,
        retries: int = defaults.CLIENT_RETRIES,
        backoff: float = 0.5,
        tls_ca: str = "",
        label_names: dict[int, str] | None = None,
        max_message_mb: int = 64,
    ) -> None:
        self.target, self.model, self.version, self.label = target, model, version, label
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.label_names = label_names or {}
        options = [
            ("grpc.max_send_message_length", max_message_mb * 1024 * 1024),
            ("grpc.max_receive_message_length", max_message_mb * 1024 * 1024),
        ]
        if tls_ca:
            with open(tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> DetectionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spec(self, spec: Any, signature: str = "") -> None:
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version
        elif self.label:
            spec.version_label = self.label
        if signature:
            spec.signature_name = signature

    def _call(self, method: Any, request: Any) -> Any:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise PredictionError(code, e.details() or "", self.target) from None
        raise AssertionError("unreachable")

    def predict(self, image: bytes | np.ndarray, signature: str = ENCODED_IMAGE) -> PredictResult:
        """Detections for one image.

        Args:
            image: JPEG/PNG bytes, or a uint8 [height, width, 3] array. Bytes
                with an EXIF orientation are turned upright first, so the
                boxes are in the image's displayed frame.
            signature: "encoded_image" (bytes travel as they are) or
                "serving_default" (a raw uint8 tensor, the Model Zoo's signature).

        Raises:
            PredictionError: the server refused or could not be reached.
        """
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature)
        if signature == SERVING_DEFAULT:
            pixels = image if isinstance(image, np.ndarray) else decode(image)
            request.inputs["input_tensor"].CopyFrom(tf.make_tensor_proto(pixels[None].astype(np.uint8)))
        else:
            # The graph's decoder ignores EXIF: a tagged photo is turned upright here (see the module doc).
            data = upright(image)[0] if isinstance(image, bytes) else encode_png(image)
            request.inputs[ENCODED_IMAGE].CopyFrom(tf.make_tensor_proto([data]))
        response = self._call(self._predict.Predict, request)
        out = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        n = int(out["num_detections"][0])
        return PredictResult(
            model=response.model_spec.name,
            version=int(response.model_spec.version.value),
            boxes=out["detection_boxes"][0, :n],
            scores=out["detection_scores"][0, :n],
            classes=out["detection_classes"][0, :n].astype(np.int64),
            label_names=self.label_names,
        )

    def status(self) -> list[tuple[int, str, str]]:
        """(version, state, error) of every version the server knows."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model
        response = self._call(self._models.GetModelStatus, request)
        names = get_model_status_pb2.ModelVersionStatus.State.Name
        return [(v.version, names(v.state), v.status.error_message) for v in response.model_version_status]


def read_label_names(push_destination: str, version: int) -> dict[int, str]:
    """Class names from a pushed version's label map asset; {} when it cannot be read from here."""
    from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap, LabelMapError

    try:
        return dict(LabelMap.read(os.path.join(push_destination, str(version), "assets", LABEL_MAP_FILENAME)).items())
    except (LabelMapError, OSError):
        return {}


def decode(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes to a uint8 RGB array, upright as its EXIF orientation says (as displayed)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(upright_image(image).convert("RGB"))


def encode_png(pixels: np.ndarray) -> bytes:
    """A uint8 RGB array to PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def draw(data: bytes, detections: list[Detection]) -> bytes:
    """The image, upright as displayed, with boxes, labels and scores drawn, as PNG bytes.

    `detections` are in the displayed frame, as `DetectionClient.predict` returns them.
    """
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(data)) as source:
        image = upright_image(source).convert("RGB")
    canvas = ImageDraw.Draw(image)
    w, h = image.size
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    for d in detections:
        ymin, xmin, ymax, xmax = d.box
        color = palette[d.class_id % len(palette)]
        canvas.rectangle([xmin * w, ymin * h, xmax * w, ymax * h], outline=color, width=3)
        canvas.text((xmin * w + 3, max(0, ymin * h - 12)), f"{d.label} {d.score:.2f}", fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
