"""`detx infer`: score a folder of images (or a span) with a pushed model in a Beam job, resumably."""

from __future__ import annotations

from typing import Any

import click

from detx.components.batch_inference.options import BulkInferenceOptions
from detx.pipeline.cli.options import absolute_callback, data_option, default_of, model_place, models_options


def _default(field: str) -> Any:
    return default_of(BulkInferenceOptions, field)


def _input_root(images: str | None, data_path: str | None, span: int | None) -> str:
    """The folder to score: --images, or --data's span folder (--span, else the newest)."""
    from detx.components.data.scan import DatasetError
    from detx.components.data.spans import span_dir, window

    if (images is None) == (data_path is None):
        raise click.UsageError("give either --images DIR or --data SPAN_ROOT (with --span N, default the newest)")
    if images is not None:
        if span is not None:
            raise click.UsageError("--span goes with --data SPAN_ROOT, not with --images")
        return images
    assert data_path is not None
    try:
        (chosen,) = window(data_path, span, 1)
    except DatasetError as e:
        raise click.ClickException(str(e)) from e
    return span_dir(data_path, chosen)


def _beam_args(config_files: tuple[str, ...]) -> list[str]:
    """`beam_args` of the --config files (pipeline/configs/ has Dataflow and Flink); none: Beam in process."""
    from detx.pipeline.config_file import ConfigError, layered_values

    try:
        values = layered_values(config_files, {})
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    args = values.get("beam_args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise click.UsageError(f"beam_args must be a list of strings such as --runner=DataflowRunner, got {args!r}")
    return list(args)


@click.command("infer")
@click.option(
    "--images",
    callback=absolute_callback,
    help="A folder of images (local or gs://), searched recursively.",
)
@data_option("A span root (span-1/, span-2/, ...): score the images of one span.")
@click.option("--span", type=click.IntRange(min=1), help="With --data: the span to score. [default: the newest]")
@click.option(
    "--model",
    help="A version of the push destination, or a SavedModel folder. [default: the served version]",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    callback=absolute_callback,
    help="Where the results go; a re-run with the same job resumes there.",
)
@models_options()
@click.option("--min-score", type=click.FloatRange(0, 1), default=_default("min_score"), show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=_default("batch_size"), show_default=True)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=_default("shard_size"),
    show_default=True,
    help="Images per output shard (what a re-run skips when it is done).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=_default("max_pixels"),
    show_default=True,
    help="Larger images are skipped.",
)
@click.option("--overwrite", is_flag=True, help="Replace another job's results in --out.")
@click.pass_context
def infer_command(
    ctx: click.Context,
    images: str | None,
    data_path: str | None,
    span: int | None,
    model: str | None,
    out_dir: str,
    min_score: float,
    batch_size: int,
    shard_size: int,
    max_pixels: int,
    overwrite: bool,
    config_files: tuple[str, ...],
    **_: Any,
) -> None:
    """Score many images with a detector in a Beam job: JSON lines per image, COCO results, a summary.

    Images that cannot be read or are too large are listed in skipped.jsonl with
    their reasons and counted; they never stop the job. The images are cut into
    fixed shards of the sorted listing, each written at once when it is done, so
    running the same command again after an interruption redoes only the
    unfinished shards. Beam runs in this process on every core, or where the
    --config file's beam_args say (pipeline/configs/beam_dataflow.yaml, beam_flink.yaml).
    """
    from detx.components.batch_inference import job
    from detx.components.batch_inference.listing import InferenceError
    from detx.components.batch_inference.model import resolve

    root = _input_root(images, data_path, span)
    beam_args = _beam_args(config_files)
    options = BulkInferenceOptions(
        min_score=min_score, batch_size=batch_size, shard_size=shard_size, max_pixels=max_pixels
    )
    try:
        ref = resolve(model, model_place(ctx).push_destination)
        job.run(root, out_dir, ref, options, beam_args, overwrite=overwrite, echo=click.echo)
    except InferenceError as e:
        raise click.ClickException(str(e)) from e


COMMANDS = (infer_command,)

if __name__ == "__main__":  # the command alone: `python -m detx.pipeline.cli.infer` (tests run it as a process)
    infer_command()
