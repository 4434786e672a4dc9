"""`detx export tflite`: an exported detx model as TFLite models for phones and edge devices."""

from __future__ import annotations

from typing import Any

import click

from detx.components.tflite.options import FLOAT16, FLOAT32, INT8, TFLiteOptions
from detx.pipeline.cli.options import AliasedOption, absolute_callback, default_of, name_option
from detx.pipeline.config import PipelineConfig


@click.group("export")
def export_group() -> None:
    """Export a trained model for other runtimes."""


@export_group.command("tflite")
@click.option(
    "--model",
    "model_dir",
    required=True,
    callback=absolute_callback,
    help="An exported detx SavedModel: a pushed version (<push destination>/<version>) or a Trainer's "
    "Format-Serving folder.",
)
# `--out`, as every command that writes a folder names it; `--output` was its old name.
@click.option(
    "--out",
    "--output",
    "out_dir",
    cls=AliasedOption,
    hidden_aliases=("--output",),
    required=True,
    callback=absolute_callback,
    help="The folder to create (absent or empty): the .tflite files and tflite_report.json.",
)
@click.option("--int8", is_flag=True, help="Also a full-integer int8 model (needs --representative).")
@click.option(
    "--representative",
    callback=absolute_callback,
    help="Calibration images for --int8: an ExampleGen output folder (its train split), TFRecords of tf.Examples, "
    "a folder of JPEG/PNG files, or a uint8 .npy array [N, S, S, 3] at the model's input size.",
)
@click.option(
    "--calibration-examples",
    type=click.IntRange(min=1),
    default=default_of(TFLiteOptions, "calibration_examples"),
    show_default=True,
    help="Most representative images int8 is calibrated on (a seeded sample).",
)
@click.option(
    "--eval",
    "eval_data",
    callback=absolute_callback,
    help="tf.Examples with boxes to measure COCO mAP on, beside the SavedModel's: an ExampleGen output folder "
    "(its eval split) or TFRecords. With --int8, int8 is kept only within --max-int8-map50-drop.",
)
@click.option(
    "--max-int8-map50-drop",
    type=click.FloatRange(0, 1),
    default=default_of(TFLiteOptions, "max_int8_map50_drop"),
    show_default=True,
    help="With --eval: int8 is put under rejected/ if its mAP@0.5 is more than this below the SavedModel's.",
)
@click.option(
    "--fast-nms",
    is_flag=True,
    help="Class-agnostic NMS (the OD API export's): right on any number of threads, less accurate. The default, "
    "per-class NMS as detx's, is right only when the app runs TFLite with one thread (docs/edge.md).",
)
@name_option()
def tflite_command(
    model_dir: str,
    out_dir: str,
    int8: bool,
    representative: str | None,
    calibration_examples: int,
    eval_data: str | None,
    max_int8_map50_drop: float,
    fast_nms: bool,
    name: str | None,
    **_: Any,
) -> None:
    """Convert an exported detx model to TFLite: float32 and float16, and int8 with --int8.

    Every model ends in TFLite's detection post-processing op and carries TFLite
    Metadata (labels, input normalization), so TFLite's Task Library and the Coral
    and MediaPipe samples read it without extra files. With --eval, each model's
    COCO mAP is measured with TFLite's interpreter beside the SavedModel's.
    Nothing is written unless every model is.
    """
    from detx.components.tflite.build import OutputExistsError, build
    from detx.components.tflite.convert import ConversionError
    from detx.components.tflite.inputs import RepresentativeDataError
    from detx.components.tflite.source import DetectorSourceError

    if int8 and not representative:
        raise click.UsageError("--int8 needs --representative: images like those the model will see")
    if representative and not int8:
        raise click.UsageError("--representative is for --int8 (calibration); add --int8 or leave it out")
    options = TFLiteOptions(
        calibration_examples=calibration_examples,
        max_int8_map50_drop=max_int8_map50_drop,
        use_regular_nms=not fast_nms,
    )
    kinds = (FLOAT32, FLOAT16, INT8) if int8 else (FLOAT32, FLOAT16)
    try:
        report = build(
            model_dir,
            out_dir,
            kinds=kinds,
            representative=representative,
            eval_data=eval_data,
            options=options,
            name=name or str(default_of(PipelineConfig, "name")),
            log=lambda line: click.echo(f"detx export tflite: {line}", err=True),
        )
    except (
        OutputExistsError,
        DetectorSourceError,
        RepresentativeDataError,
        ConversionError,
        ValueError,
        OSError,
    ) as e:
        raise click.ClickException(f"{e} (nothing was written to {out_dir})") from e
    for line in report.summary_lines():
        click.echo(line)
    click.echo(f"wrote {out_dir}")


COMMANDS = (export_group,)
