"""`detx serve` and `detx web`: serve the pushed models and show them on a page (`detx predict`: cli/predict.py)."""

from __future__ import annotations

from typing import Any

import click

from detx.pipeline.cli.options import (
    CLIENT_ALIASES,
    WEB_PORT,
    bind_host_option,
    canary_percent_option,
    metrics_port_option,
    min_score_option,
    model_place,
    models_options,
    server_option,
    shadow_percent_option,
    tls_ca_option,
)
from detx.pipeline.project import absolute
from detx.serving import defaults

# The names these options had before one name per idea (`--model-name` on serve, `--model` on
# predict and web, `--model-base-path` on all three) still work, hidden from --help.
_SERVE_ALIASES = {"name_aliases": ("--model-name",), "destination_aliases": ("--model-base-path",)}
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
@click.option(
    "--port", default=defaults.GRPC_PORT, show_default=True, type=click.IntRange(0, 65535), help="gRPC port (0: any)."
)
@metrics_port_option
@click.option("--version", "versions", multiple=True, type=click.IntRange(min=1), help="Serve these versions only.")
@click.option("--label", "labels", multiple=True, help="LABEL=VERSION, e.g. stable=3 (repeatable).")
@click.option("--max-request-mb", default=defaults.MAX_REQUEST_MB, show_default=True, type=click.IntRange(min=1))
@click.option("--max-pixels", default=defaults.MAX_PIXELS, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=defaults.WORKERS, show_default=True, type=click.IntRange(min=1))
@click.option("--poll-seconds", default=defaults.POLL_SECONDS, show_default=True, type=click.FloatRange(min=0.05))
@click.option("--tls-cert", default="", help="PEM certificate: serve over TLS.")
@click.option("--tls-key", default="", help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", default="", help="PEM CA of client certificates (mutual TLS).")
@click.option("--batching", is_flag=True, help="Batch concurrent requests (same signature and image size).")
@click.option("--max-batch-size", default=defaults.MAX_BATCH_SIZE, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-timeout-ms", default=defaults.BATCH_TIMEOUT_MS, show_default=True, type=click.FloatRange(min=0))
@click.option("--request-log", default="", help="Log a sample of requests (image statistics, scores) to this dir.")
@click.option(
    "--request-log-sample",
    default=defaults.REQUEST_LOG_SAMPLE,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
)
@click.option("--request-log-images", is_flag=True, help="Also keep the sampled images (off: statistics only).")
@click.option("--web", is_flag=True, help="Also serve the web page (upload an image, see its detections).")
@click.option("--web-port", default=WEB_PORT, show_default=True, type=click.IntRange(0, 65535))
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


@click.command("web")
@server_option
@models_options(**CLIENT_ALIASES)
@bind_host_option
@click.option("--port", default=WEB_PORT, show_default=True, type=click.IntRange(0, 65535))
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
    """Serve the web page alone, in front of a model server already running.

    Upload an image, see its detections from the server's gRPC API: `detx
    serve` or TF Serving, here or elsewhere, over TLS with --tls-ca. Not the
    same as `detx serve --web`, which starts a model server and the page
    together in one process (plaintext only, with the page's default upload
    limit and minimum score).
    """
    from detx.serving.webapp.app import WebConfig

    place = model_place(ctx)
    click.echo(f"detx web: http://{host}:{port}/ -> model {place.name!r} at {server}", err=True)
    config = WebConfig(server, place.name, place.push_destination, max_upload_mb, min_score, tls_ca=tls_ca)
    _start_web(config, host, port, background=False)


COMMANDS = (serve_command, web_command)
