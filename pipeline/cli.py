"""The `detx` command line."""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Any

import click

# TensorFlow's C++ start-up messages (CUDA plugin registration, CPU features) are
# noise on a terminal and say nothing actionable; TF reads this at import time.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# google-cloud packages (imported by TFX) warn about their own future versions and
# Python 3.11's end of life on every import; nothing a detx user can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """detx: object detection MLOps on TFX, Kubeflow Pipelines and TensorFlow Serving."""


@main.group()
def data() -> None:
    """Make and inspect detection datasets."""


def _floats(value: str | None) -> tuple[float, ...] | None:
    if not value:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 4,1,1; got {value!r}") from None


@data.command("synth")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New dataset folder.")
@click.option("--images", "num_images", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--format", "fmt", default="coco", show_default=True, type=click.Choice(["coco", "voc", "tfrecord"]))
@click.option("--width", default=640, show_default=True, type=click.IntRange(min=64))
@click.option("--height", default=480, show_default=True, type=click.IntRange(min=64))
@click.option("--classes", help="Shapes to draw, from circle,square,triangle,cross. [default: the first three]")
@click.option("--class-weights", help="Relative frequency of each class, e.g. 4,1,1. [default: equal]")
@click.option("--brightness", default=1.0, show_default=True, type=click.FloatRange(0.05, 2.0), help="< 1 is darker.")
@click.option("--first-id", default=1, show_default=True, type=click.IntRange(min=1), help="Id of the first image.")
def synth(
    out_dir: str,
    num_images: int,
    seed: int,
    fmt: str,
    width: int,
    height: int,
    classes: str | None,
    class_weights: str | None,
    brightness: float,
    first_id: int,
) -> None:
    """Write a deterministic synthetic dataset of shapes (circle, square, triangle; optionally cross)."""
    from detx.components.data.synth import CLASSES, SynthConfig, write_dataset

    names = tuple(c.strip() for c in classes.split(",")) if classes else CLASSES
    weights = _floats(class_weights) or (1.0,) * len(names)
    max_size = min(160, width, height)
    try:
        config = SynthConfig(
            num_images=num_images,
            seed=seed,
            width=width,
            height=height,
            max_size=max_size,
            classes=names,
            class_weights=weights,
            brightness=brightness,
            first_id=first_id,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    step = max(1, num_images // 10)

    def progress(n: int) -> None:
        if n % step == 0 or n == num_images:
            click.echo(f"  {n}/{num_images} images", err=True)

    try:
        summary = write_dataset(out_dir, config, fmt, progress=progress)
    except (FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    per_class = ", ".join(f"{k} {v}" for k, v in summary.boxes_per_class.items())
    click.echo(
        f"Wrote {summary.num_images} images ({summary.num_empty} without objects) and {summary.num_boxes} boxes "
        f"({per_class}) as {fmt} to {summary.out_dir}"
    )


def _parse_splits(value: str) -> dict[str, int]:
    splits: dict[str, int] = {}
    for part in value.split(","):
        name, _, buckets = part.partition("=")
        if not name or not buckets.isdigit() or int(buckets) <= 0:
            raise click.BadParameter(f"expected name=buckets[,name=buckets...], e.g. train=4,eval=1; got {value!r}")
        splits[name.strip()] = int(buckets)
    return splits


def _overrides(ctx: click.Context, mapping: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The options given on the command line, as a nested config mapping (file values stay otherwise)."""
    out: dict[str, Any] = {}
    for param, path in mapping.items():
        value = ctx.params.get(param)
        if value is None or ctx.get_parameter_source(param) != click.core.ParameterSource.COMMANDLINE:
            continue
        holder = out
        for key in path[:-1]:
            holder = holder.setdefault(key, {})
        holder[path[-1]] = value
    return out


# Command-line option -> place in the config file's mapping.
_RUN_OPTIONS: dict[str, tuple[str, ...]] = {
    "data_path": ("data", "path"),
    "fmt": ("data", "format"),
    "pattern": ("data", "pattern"),
    "image_dir": ("data", "image_dir"),
    "splits": ("data", "splits"),
    "max_rejected_fraction": ("data", "max_rejected_fraction"),
    "max_pixels": ("data", "max_pixels"),
    "span_window": ("data", "span_window"),
    "span": ("data", "span"),
    "until": ("stop_after",),
    "name": ("name",),
    "schema_file": ("schema_file",),
    "preset": ("trainer", "preset"),
    "batch_size": ("trainer", "batch_size"),
    "pretrained": ("trainer", "pretrained"),
    "restore_scope": ("trainer", "restore_scope"),
    "freeze_batchnorm": ("trainer", "freeze_batchnorm"),
    "seed": ("trainer", "seed"),
    "train_steps": ("train_steps",),
    "min_map50": ("evaluator", "min_map_50"),
    "max_map50_drop": ("evaluator", "max_map_50_drop"),
    "push_destination": ("push_destination",),
    "baseline": ("baseline",),
}


def _abs(value: str | None) -> str | None:
    return os.path.abspath(value) if value and "://" not in value else value


@main.command("run")
@click.option(
    "--config",
    "config_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Pipeline config (YAML); repeat to layer files (later ones win).",
)
@click.option("--data", "data_path", type=click.Path(exists=True, file_okay=False), help="The labelled dataset.")
@click.option("--format", "fmt", type=click.Choice(["coco", "voc", "tfrecord"]), help="[default: coco]")
@click.option("--project", "project_dir", default=".detx/project", show_default=True, type=click.Path(file_okay=False))
@click.option("--until", "until", help="Last stage: validation, training, evaluation or push. [default: push]")
@click.option("--name", help="Pipeline name (ML Metadata context, model name). [default: detx]")
@click.option("--split", "splits", help="Hash buckets per split. [default: train=4,eval=1]")
@click.option("--pattern", help="Annotation files relative to --data (default: the format's).")
@click.option("--image-dir", help="Image folder relative to --data (default: the format's).")
@click.option("--max-rejected-fraction", type=click.FloatRange(0, 1), help="[default: 0.01]")
@click.option("--max-pixels", type=click.IntRange(min=1), help="[default: 40000000]")
@click.option("--span-window", type=click.IntRange(min=0), help="--data is a span root: read this many newest spans.")
@click.option("--span", type=click.IntRange(min=0), help="With --span-window: the newest span to read.")
@click.option("--schema", "schema_file", help="Schema template replacing detx's own.")
@click.option("--preset", type=click.Choice(["zoo320", "tiny"]), help="Model preset. [default: zoo320]")
@click.option("--train-steps", type=click.IntRange(min=1), help="[default: 50000]")
@click.option("--batch-size", type=click.IntRange(min=0), help="Overrides the preset's batch size.")
@click.option("--pretrained", help="Model Zoo model dir or ImageNet MobileNetV2 .h5 weights.")
@click.option(
    "--restore-scope",
    type=click.Choice(["detection", "detection+box", "full"]),
    help="What a Model Zoo checkpoint restores. [default: detection]",
)
@click.option("--freeze-batchnorm", is_flag=True, default=None, help="Keep batch norm fixed (small batches).")
@click.option("--seed", type=int, help="[default: 0]")
@click.option("--min-map50", type=click.FloatRange(0, 1), help="Bless only at this mAP@0.5 or more. [default: 0.3]")
@click.option(
    "--max-map50-drop",
    type=click.FloatRange(0, 1),
    help="Bless only if mAP@0.5 is at most this much below production. [default: 0.01]",
)
@click.option("--push-destination", help="TF Serving model base path. [default: <project>/models/<name>]")
@click.option("--baseline", help="auto (the served version), none, or a SavedModel dir. [default: auto]")
@click.option("--no-cache", is_flag=True, help="Run every component even if its inputs did not change.")
@click.option("-v", "--verbose", is_flag=True, help="Print TFX's and Beam's logs too.")
@click.pass_context
def run(
    ctx: click.Context, config_files: tuple[str, ...], project_dir: str, no_cache: bool, verbose: bool, **_: object
) -> None:
    """Run the whole pipeline locally (LocalDagRunner, Beam DirectRunner, SQLite ML Metadata).

    ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, DataGate, Trainer,
    Evaluator (COCO mAP, blessing against the served model), Pusher. Options
    given here override the config file; both override detx's defaults.
    """
    from detx.pipeline.config_file import ConfigError, build_config, layered_values

    if ctx.params.get("splits") is not None:
        ctx.params["splits"] = _parse_splits(ctx.params["splits"])
    for key in ("data_path", "pretrained", "push_destination", "baseline"):
        if ctx.params.get(key) not in (None, "", "auto", "none"):
            ctx.params[key] = _abs(ctx.params[key])
    try:
        values = layered_values(config_files, _overrides(ctx, _RUN_OPTIONS))
        if no_cache:
            values["enable_cache"] = False
        config = build_config(values)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    if not os.path.isdir(config.data.path) and "://" not in config.data.path:
        raise click.UsageError(f"the data folder {config.data.path} does not exist")
    stage = config.stop_after
    click.echo(
        f"detx run: {config.data.path} ({config.data.format}) until {stage.value}; "
        f"project {os.path.abspath(project_dir)}"
    )
    from detx.pipeline.local_runner import PipelineRunFailed, ProjectPaths, run_local
    from detx.pipeline.run_report import format_summary, latest_run

    try:
        result = run_local(config, project_dir, echo=click.echo, verbose=verbose)
    except PipelineRunFailed as e:
        click.echo(f"\nThe run stopped at {e.node or 'start-up'}:\n{e.cause}\n\nFull log: {e.log_path}", err=True)
        sys.exit(1)
    paths = ProjectPaths(os.path.abspath(project_dir))
    click.echo("")
    click.echo(format_summary(latest_run(paths.metadata_path, config.name)))
    click.echo(f"Artifacts: {paths.pipeline_root}\nML Metadata: {paths.metadata_path}\nFull log: {result.log_path}")


def _store(project_dir: str, name: str, push_destination: str | None):  # type: ignore[no-untyped-def]
    from detx.components.pusher.model_store import ModelStore
    from detx.pipeline.local_runner import ProjectPaths

    return ModelStore(push_destination or ProjectPaths(os.path.abspath(project_dir)).push_destination(name))


_DEST_OPTIONS = [
    click.option("--project", "project_dir", default=".detx/project", show_default=True, type=click.Path()),
    click.option("--name", default="detx", show_default=True, help="Pipeline (model) name."),
    click.option("--push-destination", help="Model base path (default: <project>/models/<name>)."),
]


def _dest_options(fn):  # type: ignore[no-untyped-def]
    for option in reversed(_DEST_OPTIONS):
        fn = option(fn)
    return fn


@main.command("models")
@_dest_options
def models(project_dir: str, name: str, push_destination: str | None) -> None:
    """List the pushed versions: which one is served, their mAP, data spans and when they were pushed."""
    from detx.components.example_gen.report import describe_spans
    from detx.components.pusher.model_store import describe

    store = _store(project_dir, name, push_destination)
    rows = describe(store)
    if not rows:
        click.echo(f"No versions in {store.root} yet.")
        return
    click.echo(f"{store.root}:")
    for row in rows:
        state = "serving" if row["serving"] else ("incomplete (ignored)" if not row["complete"] else "")
        score = f"mAP@0.5 {row['map_50']:.3f}" if row["map_50"] is not None else "no lineage"
        spans = describe_spans(row["spans"]) if row["spans"] else ""
        click.echo(f"  {row['version']:>4}  {score:<18} {spans:<12} {row['pushed_at'] or '':<34} {state}".rstrip())
    retired = store.retired_versions()
    if retired:
        click.echo(f"  retired by rollbacks: {', '.join(map(str, retired))}")


@main.command("rollback")
@click.option("--to", "to_version", type=click.IntRange(min=1), help="The version to serve.")
@click.option("--previous", is_flag=True, help="Serve the version below the one served now.")
@_dest_options
def rollback(to_version: int | None, previous: bool, project_dir: str, name: str, push_destination: str | None) -> None:
    """Make an earlier version the served one, without retraining.

    Newer versions move to `.retired/` in the push destination, where TF Serving
    does not look; its latest-version policy then serves the chosen one. Their
    numbers are never reused.
    """
    from detx.components.pusher.model_store import ModelStoreError

    if (to_version is None) == (not previous):
        raise click.UsageError("give exactly one of --to VERSION or --previous")
    store = _store(project_dir, name, push_destination)
    try:
        result = store.rollback(to_version)
    except ModelStoreError as e:
        raise click.ClickException(str(e)) from e
    retired = ", ".join(map(str, result.retired)) or "none"
    click.echo(
        f"Now serving version {result.serving} (was {result.previous}); retired: {retired} -> {store.root}/.retired/"
    )


def _label_names(label_map: str | None, base_path: str | None, version: int) -> dict[int, str]:
    """Class names: from --label-map, else from the answering version's SavedModel assets if readable here."""
    from detx.components.data.label_map import LabelMap, LabelMapError
    from detx.serving.client import read_label_names

    if label_map:
        try:
            return dict(LabelMap.read(label_map).items())
        except (LabelMapError, OSError):
            raise click.BadParameter(f"cannot read the label map {label_map}", param_hint="--label-map") from None
    return read_label_names(base_path, version) if base_path else {}


@main.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--server", default="127.0.0.1:8500", show_default=True, help="HOST:PORT of detx serve or TF Serving.")
@click.option("--model", default="detx", show_default=True)
@click.option("--version", type=click.IntRange(min=1), help="A specific version (default: the served one).")
@click.option("--label", default="", help="A version label, e.g. stable or canary.")
@click.option("--raw", is_flag=True, help="Send a uint8 tensor to serving_default instead of the encoded image.")
@click.option("--min-score", default=0.3, show_default=True, type=click.FloatRange(0, 1))
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds per call.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(min=0), help="When UNAVAILABLE.")
@click.option("--tls-ca", default="", help="PEM of the server's CA: connect with TLS.")
@click.option("--label-map", help="label_map.pbtxt for class names (default: the model's, if readable locally).")
@click.option("--model-base-path", help="Where to find the model's label map (default: the project's).")
@click.option("--project", "project_dir", default=".detx/project", show_default=True, type=click.Path())
@click.option("--draw", "draw_dir", type=click.Path(file_okay=False), help="Write each image with its boxes here.")
def predict_command(
    images: tuple[str, ...],
    server: str,
    model: str,
    version: int | None,
    label: str,
    raw: bool,
    min_score: float,
    timeout: float,
    retries: int,
    tls_ca: str,
    label_map: str | None,
    model_base_path: str | None,
    project_dir: str,
    draw_dir: str | None,
) -> None:
    """Send images to a model server and print their detections as JSON (one object per image)."""
    import json

    from detx.pipeline.local_runner import ProjectPaths
    from detx.serving.client import ENCODED_IMAGE, SERVING_DEFAULT, DetectionClient, PredictionError, draw

    base = model_base_path or ProjectPaths(os.path.abspath(project_dir)).push_destination(model)
    failed = 0
    names: dict[int, dict[int, str]] = {}
    with DetectionClient(server, model, version, label, timeout=timeout, retries=retries, tls_ca=tls_ca) as client:
        for path in images:
            with open(path, "rb") as f:
                data = f.read()
            try:
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
                names[result.version] = _label_names(label_map, base, result.version)
            result = dataclasses.replace(result, label_names=names[result.version])
            detections = result.detections(min_score)
            record = {
                "image": path,
                "model": result.model,
                "version": result.version,
                "detections": [d.to_dict() for d in detections],
            }
            if draw_dir:
                os.makedirs(draw_dir, exist_ok=True)
                out = os.path.join(draw_dir, os.path.splitext(os.path.basename(path))[0] + ".boxes.png")
                with open(out, "wb") as f:
                    f.write(draw(data, detections))
                record["drawn"] = out
            click.echo(json.dumps(record))
    if failed:
        raise click.ClickException(f"{failed} of {len(images)} image(s) failed")


@main.command("serve")
@click.option("--model-name", default="detx", show_default=True, help="The model name clients put in ModelSpec.")
@click.option("--model-base-path", help="Versions to serve (default: the project's push destination).")
@click.option("--project", "project_dir", default=".detx/project", show_default=True, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for all).")
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
def serve(
    model_name: str,
    model_base_path: str | None,
    project_dir: str,
    host: str,
    port: int,
    metrics_port: int,
    versions: tuple[int, ...],
    labels: tuple[str, ...],
    max_request_mb: int,
    max_pixels: int,
    workers: int,
    poll_seconds: float,
    tls_cert: str,
    tls_key: str,
    tls_client_ca: str,
    batching: bool,
    max_batch_size: int,
    batch_timeout_ms: float,
    request_log: str,
    request_log_sample: float,
    request_log_images: bool,
    web: bool,
    web_port: int,
) -> None:
    """Serve the pushed model over TF Serving's gRPC API (Predict, GetModelMetadata, GetModelStatus).

    Watches the base path: new complete versions are loaded and served once
    ready, the old one until then; a version that fails to load leaves the
    previous one serving. SIGTERM stops it after running requests finish.
    With --web, the web page runs beside it and calls it over gRPC.
    """
    import logging

    from detx.pipeline.local_runner import ProjectPaths
    from detx.serving.model_server.batching import describe
    from detx.serving.model_server.predict import Limits
    from detx.serving.model_server.request_log import RequestLogConfig
    from detx.serving.model_server.server import ModelServer, ServerConfig
    from detx.serving.model_server.versions import VersionPolicy

    if web and tls_cert:
        raise click.UsageError("--web talks plaintext gRPC to this server: start `detx web --tls-ca ...` separately")
    label_map: dict[str, int] = {}
    for item in labels:
        name, _, number = item.partition("=")
        if not name or not number.isdigit():
            raise click.BadParameter(f"expected LABEL=VERSION, got {item!r}", param_hint="--label")
        label_map[name] = int(number)
    base = model_base_path or ProjectPaths(os.path.abspath(project_dir)).push_destination(model_name)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(
        model_name=model_name,
        base_path=_abs(base) or base,
        host=host,
        port=port,
        metrics_port=metrics_port,
        policy=VersionPolicy(specific=tuple(versions), labels=label_map),
        max_request_bytes=max_request_mb * 1024 * 1024,
        limits=Limits(max_pixels=max_pixels),
        workers=workers,
        poll_seconds=poll_seconds,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        batching=batching,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        request_log=(
            RequestLogConfig(_abs(request_log) or request_log, request_log_sample, request_log_images)
            if request_log
            else None
        ),
    )
    try:
        server = ModelServer(config)
    except (OSError, ValueError, RuntimeError) as e:
        raise click.ClickException(f"cannot start the server: {e}") from e
    server.start()
    loaded = ", ".join(f"{v.version} {v.state.name}" for v in server.manager.snapshot()) or "none yet"
    metrics = f"; metrics on http://{host}:{metrics_port}/metrics" if metrics_port else ""
    if config.request_log:
        metrics += f"; logging {config.request_log.sample:.0%} of requests to {config.request_log.directory}"
    click.echo(
        f"detx serve: model {model_name!r} from {config.base_path} on {host}:{server.port} "
        f"({'TLS' if tls_cert else 'plaintext'}; batching {describe(server.batcher)}); versions: {loaded}{metrics}",
        err=True,
    )
    web_server = None
    if web:
        target = f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{server.port}"
        web_server = _start_web(WebSettings(target, model_name, config.base_path), host, web_port)
        click.echo(f"detx serve: web page on http://{host}:{web_port}/", err=True)
    server.wait()
    if web_server is not None:
        web_server.should_exit = True
    click.echo("detx serve: stopped", err=True)


@dataclasses.dataclass(frozen=True)
class WebSettings:
    """What `detx serve --web` and `detx web` give the web app."""

    server: str
    model: str
    model_base_path: str
    min_score: float = 0.3
    max_upload_mb: float = 10.0
    tls_ca: str = ""


def _start_web(settings: WebSettings, host: str, port: int, background: bool = True) -> Any:
    """Starts the web app with uvicorn: in a thread (beside detx serve) or in this one."""
    import threading

    import uvicorn

    from detx.serving.webapp.app import WebConfig, create_app

    app = create_app(WebConfig(**dataclasses.asdict(settings)))
    web_server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    if not background:
        web_server.run()
        return web_server
    threading.Thread(target=web_server.run, name="detx-web", daemon=True).start()
    return web_server


@main.command("web")
@click.option("--server", default="127.0.0.1:8500", show_default=True, help="HOST:PORT of detx serve or TF Serving.")
@click.option("--model", default="detx", show_default=True)
@click.option("--model-base-path", default="", help="The push destination, for class names (default: the project's).")
@click.option("--project", "project_dir", default=".detx/project", show_default=True, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for all).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--min-score", default=0.3, show_default=True, type=click.FloatRange(0, 1))
@click.option("--max-upload-mb", default=10.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--tls-ca", default="", help="PEM of the model server's CA: connect with TLS.")
def web_command(
    server: str,
    model: str,
    model_base_path: str,
    project_dir: str,
    host: str,
    port: int,
    min_score: float,
    max_upload_mb: float,
    tls_ca: str,
) -> None:
    """Serve the web page: upload an image, see its detections from a model server (gRPC)."""
    from detx.pipeline.local_runner import ProjectPaths

    base = model_base_path or ProjectPaths(os.path.abspath(project_dir)).push_destination(model)
    click.echo(f"detx web: http://{host}:{port}/ -> model {model!r} at {server}", err=True)
    _start_web(WebSettings(server, model, base, min_score, max_upload_mb, tls_ca), host, port, background=False)


def _add_kubeflow_commands() -> None:
    from detx.pipeline import kfp_cli

    for command in kfp_cli.COMMANDS:
        main.add_command(command)


_add_kubeflow_commands()


def _add_ct_commands() -> None:
    from detx.pipeline import ct_cli

    ct_cli.register(main, data)


_add_ct_commands()


if __name__ == "__main__":
    main()
