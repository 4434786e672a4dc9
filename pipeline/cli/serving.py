"""`detx serve`, `detx predict`, `detx web`: serve the pushed models, call them, show them on a page."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import click

from detx.pipeline.cli.options import (
    bind_host_option,
    canary_percent_option,
    min_score_option,
    model_place,
    models_options,
    server_option,
    shadow_percent_option,
    tls_ca_option,
)
from detx.pipeline.project import absolute

# The names these options had before one name per idea (`--model-name` on serve, `--model` on
# predict and web, `--model-base-path` on all three) still work, hidden from --help.
_SERVE_ALIASES = {"name_aliases": ("--model-name",), "destination_aliases": ("--model-base-path",)}
_CLIENT_ALIASES = {"name_aliases": ("--model",), "destination_aliases": ("--model-base-path",)}
# `detx serve` options that go to ServerConfig under their own names.
_SERVER_SETTINGS = (
    "workers",
    "poll_seconds",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "batching",
    "max_batch_size",
    "batch_timeout_ms",
)


@click.command("serve")
@models_options(**_SERVE_ALIASES)
@bind_host_option
@click.option("--port", default=8500, show_default=True, type=click.IntRange(0, 65535), help="gRPC port (0: any).")
@click.option("--metrics-port", default=8502, show_default=True, type=click.IntRange(0, 65535), help="0: off.")
@click.option("--version", "versions", multiple=True, type=click.IntRange(min=1), help="Serve these versions only.")
@click.option("--label", "labels", multiple=True, help="LABEL=VERSION, e.g. stable=3 (repeatable).")
@click.option("--max-request-mb", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--max-pixels", default=50_000_000, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--poll-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0.05))
@click.option("--tls-cert", default="", help="PEM certificate: serve over TLS.")
@click.option("--tls-key", default="", help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", default="", help="PEM CA of client certificates (mutual TLS).")
@click.option("--batching", is_flag=True, help="Batch concurrent requests (same signature and image size).")
@click.option("--max-batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-timeout-ms", default=2.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--request-log", default="", help="Log a sample of requests (image statistics, scores) to this dir.")
@click.option("--request-log-sample", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--request-log-images", is_flag=True, help="Also keep the sampled images (off: statistics only).")
@click.option("--web", is_flag=True, help="Also serve the web page (upload an image, see its detections).")
@click.option("--web-port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--shadow",
    type=click.IntRange(min=1),
    help="Mirror a share of stable's requests to this candidate version, off the request path, and compare.",
)
@shadow_percent_option(10.0, "With --shadow: the share of stable's requests mirrored.")
@click.option("--canary", type=click.IntRange(min=1), help="A candidate version that answers a share of requests.")
@canary_percent_option(None, "With --canary: the share of requests naming no version that it answers.")
@min_score_option
@click.pass_context
def serve_command(
    ctx: click.Context,
    host: str,
    port: int,
    metrics_port: int,
    versions: tuple[int, ...],
    labels: tuple[str, ...],
    max_request_mb: int,
    max_pixels: int,
    request_log: str,
    request_log_sample: float,
    request_log_images: bool,
    web: bool,
    web_port: int,
    shadow: int | None,
    shadow_percent: float,
    canary: int | None,
    canary_percent: float | None,
    min_score: float,
    **settings: Any,
) -> None:
    """Serve the pushed model over TF Serving's gRPC API (Predict, GetModelMetadata, GetModelStatus).

    Watches the push destination: new complete versions are loaded and served
    once ready, the old one until then; a version that fails to load leaves the
    previous one serving. SIGTERM stops it after running requests finish.
    With --web, the web page runs beside it and calls it over gRPC.

    Traffic split: with --canary or --shadow, the candidate takes that share
    and stable is the version otherwise served; without them (and without
    --version), the split in the push destination's detx_traffic.json is
    followed as `detx rollout` changes it. Mirrored requests are compared
    with stable's answers (detections scoring at least --min-score), never
    returned to clients.
    """
    import logging

    from detx.serving.model_server.batching import describe
    from detx.serving.model_server.predict import Limits
    from detx.serving.model_server.request_log import RequestLogConfig
    from detx.serving.model_server.server import ModelServer, ServerConfig
    from detx.serving.model_server.shadow import MirrorOptions
    from detx.serving.model_server.versions import VersionPolicy
    from detx.serving.webapp.app import WebConfig

    if web and settings["tls_cert"]:
        raise click.UsageError("--web talks plaintext gRPC to this server: start `detx web --tls-ca ...` separately")
    label_map: dict[str, int] = {}
    for item in labels:
        label, _, number = item.partition("=")
        if not label or not number.isdigit():
            raise click.BadParameter(f"expected LABEL=VERSION, got {item!r}", param_hint="--label")
        label_map[label] = int(number)
    traffic = _fixed_traffic(ctx, shadow, shadow_percent, canary, canary_percent)
    place = model_place(ctx)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server_settings = {k: settings[k] for k in _SERVER_SETTINGS}
    config = ServerConfig(
        model_name=place.name,
        push_destination=place.push_destination,
        host=host,
        port=port,
        metrics_port=metrics_port,
        policy=VersionPolicy(specific=tuple(versions), labels=label_map),
        max_request_bytes=max_request_mb * 1024 * 1024,
        limits=Limits(max_pixels=max_pixels),
        request_log=(
            RequestLogConfig(absolute(request_log), request_log_sample, request_log_images) if request_log else None
        ),
        traffic=traffic,
        mirror=MirrorOptions(min_score=min_score),
        **server_settings,
    )
    try:
        server = ModelServer(config)
    except (OSError, ValueError, RuntimeError) as e:
        raise click.ClickException(f"cannot start the server: {e}") from e
    server.start()
    loaded = ", ".join(f"{v.version} {v.state.name}" for v in server.manager.snapshot()) or "none yet"
    metrics = f"; metrics on http://{host}:{metrics_port}/metrics" if metrics_port else ""
    source = config.traffic_source()
    metrics += f"; traffic: {source.describe() if source else 'the pinned versions'}"
    if config.request_log:
        metrics += f"; logging {config.request_log.sample:.0%} of requests to {config.request_log.directory}"
    click.echo(
        f"detx serve: model {place.name!r} from {config.push_destination} on {host}:{server.port} "
        f"({'TLS' if config.tls_cert else 'plaintext'}; batching {describe(server.batcher)}); "
        f"versions: {loaded}{metrics}",
        err=True,
    )
    web_server = None
    if web:
        target = f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{server.port}"
        web_server = _start_web(WebConfig(target, place.name, config.push_destination), host, web_port)
        click.echo(f"detx serve: web page on http://{host}:{web_port}/", err=True)
    server.wait()
    if web_server is not None:
        web_server.should_exit = True
    click.echo("detx serve: stopped", err=True)


def _fixed_traffic(
    ctx: click.Context, shadow: int | None, shadow_percent: float, canary: int | None, canary_percent: float | None
) -> Any:
    """The split `--shadow`/`--canary` give (None: follow detx_traffic.json), checked for contradictions."""
    from detx.components.release.traffic import TrafficError
    from detx.serving.model_server.routing import FixedTraffic

    given = ctx.get_parameter_source("shadow_percent") == click.core.ParameterSource.COMMANDLINE
    if given and shadow is None:
        raise click.UsageError("--shadow-percent needs --shadow VERSION (the candidate to mirror requests to)")
    if canary_percent is not None and canary is None:
        raise click.UsageError("--canary-percent needs --canary VERSION (the candidate that answers that share)")
    if canary is not None and canary_percent is None:
        raise click.UsageError("--canary needs --canary-percent P: the share of requests it answers (0-100)")
    if shadow is not None and canary is not None and shadow != canary:
        raise click.UsageError(
            f"--shadow {shadow} and --canary {canary} name two candidates; a split has one: name the same version"
        )
    candidate = canary if canary is not None else shadow
    if candidate is None:
        return None
    try:
        return FixedTraffic(candidate, shadow_percent if shadow is not None else 0.0, canary_percent or 0.0)
    except TrafficError as e:
        raise click.UsageError(str(e)) from e


def _start_web(config: Any, host: str, port: int, background: bool = True) -> Any:
    """Starts the web app (a `WebConfig`) with uvicorn: in a thread (beside detx serve) or in this one."""
    import threading

    import uvicorn

    from detx.serving.webapp.app import create_app

    web_server = uvicorn.Server(uvicorn.Config(create_app(config), host=host, port=port, log_level="warning"))
    if not background:
        web_server.run()
        return web_server
    threading.Thread(target=web_server.run, name="detx-web", daemon=True).start()
    return web_server


def _label_names(label_map: str | None, push_destination: str, version: int) -> dict[int, str]:
    """Class names: from --label-map, else from the answering version's SavedModel assets if readable here."""
    from detx.components.data.label_map import LabelMap, LabelMapError
    from detx.serving.client import read_label_names

    if label_map:
        try:
            return dict(LabelMap.read(label_map).items())
        except (LabelMapError, OSError):
            raise click.BadParameter(f"cannot read the label map {label_map}", param_hint="--label-map") from None
    return read_label_names(push_destination, version)


@click.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@server_option
@models_options(**_CLIENT_ALIASES)
@click.option("--version", type=click.IntRange(min=1), help="A specific version (default: the served one).")
@click.option("--label", default="", help="A version label, e.g. stable or canary.")
@click.option("--raw", is_flag=True, help="Send a uint8 tensor to serving_default instead of the encoded image.")
@min_score_option
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds per call.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(min=0), help="When UNAVAILABLE.")
@tls_ca_option
@click.option("--label-map", help="label_map.pbtxt for class names (default: the model's, if readable locally).")
@click.option("--draw", "draw_dir", type=click.Path(file_okay=False), help="Write each image with its boxes here.")
@click.option(
    "--tflite",
    "tflite_model",
    type=click.Path(exists=True, dir_okay=False),
    help="Run this .tflite model (from detx export tflite) here with TFLite's interpreter; no server.",
)
@click.pass_context
def predict_command(
    ctx: click.Context,
    images: tuple[str, ...],
    server: str,
    version: int | None,
    label: str,
    raw: bool,
    min_score: float,
    timeout: float,
    retries: int,
    tls_ca: str,
    label_map: str | None,
    draw_dir: str | None,
    tflite_model: str | None,
    **_: Any,
) -> None:
    """Send images to a model server and print their detections as JSON (one object per image).

    With --tflite, a TFLite model runs here instead: the same JSON (its "model" is
    the file's name and its "version" null) and the same drawings.
    """
    from detx.serving.client import ENCODED_IMAGE, SERVING_DEFAULT, DetectionClient, PredictionError, draw

    if tflite_model:
        if raw:
            raise click.UsageError("--raw chooses a server signature; a TFLite model takes the image itself")
        failed = _predict_tflite(tflite_model, images, min_score, label_map, draw_dir)
        if failed:
            raise click.ClickException(f"{failed} of {len(images)} image(s) failed")
        return
    place = model_place(ctx)
    failed = 0
    names: dict[int, dict[int, str]] = {}
    with DetectionClient(server, place.name, version, label, timeout=timeout, retries=retries, tls_ca=tls_ca) as client:
        for path in images:
            with open(path, "rb") as f:
                data = f.read()
            try:
                # A phone photo is turned upright from its EXIF orientation by the client (TensorFlow's
                # decoders ignore it), and `draw` turns it the same way: boxes and picture share the frame.
                result = client.predict(data, SERVING_DEFAULT if raw else ENCODED_IMAGE)
            except PredictionError as e:
                click.echo(f"{path}: {e}", err=True)
                failed += 1
                if e.code.name in ("UNAVAILABLE", "NOT_FOUND", "UNAUTHENTICATED"):
                    break  # the next image would fail the same way
                continue
            except (OSError, ValueError) as e:
                click.echo(f"{path}: not an image detx can send: {e}", err=True)
                failed += 1
                continue
            if result.version not in names:  # one label map read per answering version, not per image
                names[result.version] = _label_names(label_map, place.push_destination, result.version)
            result = dataclasses.replace(result, label_names=names[result.version])
            _emit(path, data, result.model, result.version, result.detections(min_score), draw_dir, draw)
    if failed:
        raise click.ClickException(f"{failed} of {len(images)} image(s) failed")


def _emit(
    path: str, data: bytes, model: str, version: int | None, detections: list[Any], draw_dir: str | None, draw: Any
) -> None:
    """Prints one image's JSON line (and draws it): the same for a server's answer and a TFLite model's."""
    record: dict[str, Any] = {
        "image": path,
        "model": model,
        "version": version,
        "detections": [d.to_dict() for d in detections],
    }
    if draw_dir:
        os.makedirs(draw_dir, exist_ok=True)
        out = os.path.join(draw_dir, os.path.splitext(os.path.basename(path))[0] + ".boxes.png")
        with open(out, "wb") as f:
            f.write(draw(data, detections))
        record["drawn"] = out
    click.echo(json.dumps(record))


def _predict_tflite(
    tflite_model: str, images: tuple[str, ...], min_score: float, label_map: str | None, draw_dir: str | None
) -> int:
    """`detx predict --tflite`: each image through TFLite's interpreter; returns how many failed."""
    from detx.components.tflite.interpreter import TFLiteDetector, TFLiteModelError
    from detx.serving.client import PredictResult, draw

    try:
        detector = TFLiteDetector(tflite_model)
    except TFLiteModelError as e:
        raise click.ClickException(f"{tflite_model}: {e}") from e
    # Class names: --label-map, else the model's own labels (its metadata).
    names = _label_names(label_map, "", 0) if label_map else detector.label_names()
    model = os.path.splitext(os.path.basename(tflite_model))[0]
    failed = 0
    for path in images:
        with open(path, "rb") as f:
            data = f.read()
        try:
            # Decoded, turned upright from EXIF and resized as the SavedModel's encoded_image signature does.
            found = detector.detect_encoded(data)
        except ValueError as e:
            click.echo(f"{path}: not an image detx can read: {e}", err=True)
            failed += 1
            continue
        result = PredictResult(model, 0, found.boxes, found.scores, found.classes, label_names=names)
        _emit(path, data, model, None, result.detections(min_score), draw_dir, draw)
    return failed


@click.command("web")
@server_option
@models_options(**_CLIENT_ALIASES)
@bind_host_option
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@min_score_option
@click.option("--max-upload-mb", default=10.0, show_default=True, type=click.FloatRange(min=0.01))
@tls_ca_option
@click.pass_context
def web_command(
    ctx: click.Context,
    server: str,
    host: str,
    port: int,
    min_score: float,
    max_upload_mb: float,
    tls_ca: str,
    **_: Any,
) -> None:
    """Serve the web page: upload an image, see its detections from a model server (gRPC)."""
    from detx.serving.webapp.app import WebConfig

    place = model_place(ctx)
    click.echo(f"detx web: http://{host}:{port}/ -> model {place.name!r} at {server}", err=True)
    config = WebConfig(server, place.name, place.push_destination, max_upload_mb, min_score, tls_ca=tls_ca)
    _start_web(config, host, port, background=False)


COMMANDS = (serve_command, predict_command, web_command)
