"""`detx predict`: call a model server (or a TFLite model) on image files and print or draw the detections."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import click

from detx.pipeline.cli.options import (
    CLIENT_ALIASES,
    min_score_option,
    model_place,
    models_options,
    server_option,
    tls_ca_option,
)
from detx.serving import defaults


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
@models_options(**CLIENT_ALIASES)
@click.option("--version", type=click.IntRange(min=1), help="A specific version (default: the served one).")
@click.option("--label", default="", help="A version label, e.g. stable or canary.")
@click.option("--raw", is_flag=True, help="Send a uint8 tensor to serving_default instead of the encoded image.")
@min_score_option
@click.option(
    "--timeout",
    default=defaults.CLIENT_TIMEOUT_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds per call.",
)
@click.option(
    "--retries",
    default=defaults.CLIENT_RETRIES,
    show_default=True,
    type=click.IntRange(min=0),
    help="When UNAVAILABLE.",
)
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


COMMANDS = (predict_command,)
