"""The detx web page: a FastAPI app that sends uploaded images to the model server over gRPC.

The browser uploads one image to `POST /api/detect`; the app checks it (size,
that it is an image at all), calls TF Serving's Predict (detx serve or a real
TF Serving) through `detx.serving.client.DetectionClient`, and answers JSON: the
model name and version that answered, the image size and the detections with
label names. The page (`page.html`) draws the boxes on the image.

`GET /model-card` shows the model card (HTML) of the version the model server
serves now, `GET /model-card/<version>` that of any version, both read from
the push destination (`detx.components.model_card`).

Phone photos: the client turns a photo upright from its EXIF orientation before
the model sees it (`detx.serving.client`), and the browser draws it upright
too, so the boxes, the size answered and the picture share the displayed frame.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from detx.components.evaluation.detections import MIN_SCORE
from detx.serving import defaults
from detx.serving.client import ENCODED_IMAGE, DetectionClient, PredictionError, read_label_names

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")
# gRPC status -> HTTP status for the page's error messages.
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 422,
    "RESOURCE_EXHAUSTED": 413,
    "NOT_FOUND": 404,
    "FAILED_PRECONDITION": 409,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


@dataclasses.dataclass(frozen=True)
class WebConfig:
    """Where the model server is and what the page accepts.

    Attributes:
        server: HOST:PORT of the model server's gRPC API.
        model: the model name.
        push_destination: the push destination, to read each version's label map ("" : ids only).
        max_upload_mb: larger uploads are refused with 413.
        min_score: detections below this score are not shown.
        timeout: seconds per Predict call.
        tls_ca: PEM of the model server's CA (TLS); "" for plaintext.
    """

    server: str = defaults.DEFAULT_SERVER
    model: str = "detx"
    push_destination: str = ""
    max_upload_mb: float = 10.0
    min_score: float = MIN_SCORE
    timeout: float = 10.0
    tls_ca: str = ""

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def check_image(data: bytes, filename: str) -> tuple[int, int] | str:
    """The image's (width, height) as displayed, or a message saying why it is not an image detx can read.

    A phone photo's size is the one after its EXIF orientation, the frame the
    client's boxes and the browser's drawing are in.
    """
    from PIL import Image, UnidentifiedImageError

    from detx.components.data.images import displayed_size, exif_orientation

    if not data:
        return f"{filename or 'the upload'} is empty: choose a JPEG, PNG, BMP, GIF or WebP image"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            size = displayed_size(width, height, exif_orientation(image))
            image.load()  # decodes it all: a truncated file fails here, not in the model server
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # PIL's "cannot identify image file <_io.BytesIO object at 0x...>" says nothing more than the message.
        why = "" if isinstance(e, UnidentifiedImageError) else f" ({e})"
        return f"{filename or 'the upload'} is not an image detx can read{why}: upload a JPEG, PNG, BMP, GIF or WebP"
    return int(size[0]), int(size[1])


def read_card(push_destination: str, version: int) -> bytes | str:
    """The HTML model card of `version`, or a message saying why there is none and how to make one."""
    import tensorflow as tf

    from detx.components.model_card.render import CARD_HTML, version_dir
    from detx.components.model_store import ModelStore

    if not push_destination:
        return "this web page was started without a push destination, so it cannot read model cards"
    store = ModelStore(push_destination)
    found = version_dir(store, version)  # served, pending approval (for its reviewers) or retired
    if found is None:
        return f"there is no version {version} in {store.root}"
    path = os.path.join(found, CARD_HTML)
    if not tf.io.gfile.exists(path):
        return (
            f"version {version} has no model card in {store.root} (it was pushed before detx wrote cards, or by "
            f"another tool); make one with: detx models --card {version} --rebuild --push-destination {store.root}"
        )
    with tf.io.gfile.GFile(path, "rb") as f:
        card: bytes = f.read()
    return card


def _card_response(found: bytes | str) -> Response:
    if isinstance(found, str):
        return PlainTextResponse(found, status_code=404)
    return HTMLResponse(found)


def create_app(config: WebConfig) -> FastAPI:
    """The web app for one model server."""
    app = FastAPI(title="detx", docs_url=None, redoc_url=None)
    client = DetectionClient(config.server, config.model, timeout=config.timeout, retries=1, tls_ca=config.tls_ca)
    names_by_version: dict[int, dict[int, str]] = {}
    with open(PAGE, encoding="utf-8") as f:
        page = f.read().replace("{{MAX_UPLOAD_MB}}", f"{config.max_upload_mb:g}")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            versions = await run_in_threadpool(client.status)
        except PredictionError as e:
            return _error(503, f"the model server at {config.server} does not answer: {e}")
        return JSONResponse({"model": config.model, "versions": [{"version": v, "state": s} for v, s, _ in versions]})

    @app.get("/model-card")
    async def served_model_card() -> Response:
        try:
            versions = await run_in_threadpool(client.status)
        except PredictionError as e:
            return PlainTextResponse(f"the model server at {config.server} does not answer: {e}", status_code=503)
        # The served version is the one the model server answers with: the newest AVAILABLE one.
        available = [v for v, state, _ in versions if state == "AVAILABLE"]
        if not available:
            return PlainTextResponse(f"the model server serves no version of {config.model} yet", status_code=404)
        return _card_response(await run_in_threadpool(read_card, config.push_destination, max(available)))

    @app.get("/model-card/{version}")
    async def model_card(version: int) -> Response:
        return _card_response(await run_in_threadpool(read_card, config.push_destination, version))

    @app.post("/api/detect")
    async def detect(request: Request) -> JSONResponse:
        limit = config.max_upload_bytes
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit + 64 * 1024:  # the multipart envelope adds a little
            return _error(413, f"the upload is {declared / 2**20:.1f} MB; the limit is {config.max_upload_mb:g} MB")
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            return _error(400, "send the image as multipart form field 'image'")
        data = await upload.read()
        filename = upload.filename or ""
        if len(data) > limit:
            return _error(413, f"{filename} is {len(data) / 2**20:.1f} MB; the limit is {config.max_upload_mb:g} MB")
        checked = check_image(data, filename)
        if isinstance(checked, str):
            return _error(415, checked)
        width, height = checked
        start = time.perf_counter()
        try:
            result = await run_in_threadpool(client.predict, data, ENCODED_IMAGE)
        except PredictionError as e:
            return _error(_HTTP_STATUS.get(e.code.name, 502), str(e))
        elapsed_ms = (time.perf_counter() - start) * 1000
        if result.version not in names_by_version and config.push_destination:
            names_by_version[result.version] = read_label_names(config.push_destination, result.version)
        result = dataclasses.replace(result, label_names=names_by_version.get(result.version, {}))
        body: dict[str, Any] = {
            "model": result.model,
            "version": result.version,
            "width": width,
            "height": height,
            "elapsed_ms": round(elapsed_ms, 1),
            "min_score": config.min_score,
            "detections": [d.to_dict() for d in result.detections(config.min_score)],
        }
        return JSONResponse(body)

    @app.on_event("shutdown")
    def _close() -> None:
        client.close()

    return app
