"""`detx run`: the whole pipeline on the embedded default (LocalDagRunner, Beam in process, SQLite MLMD)."""

from __future__ import annotations

import os
import sys

import click

from detx.components.modeling.config import RESTORE_SCOPES
from detx.components.trainer.options import PRODUCTION, TrainerOptions
from detx.pipeline.cli.options import (
    CONFIG_PATHS,
    build_config,
    config_option,
    data_option,
    default_of,
    format_option,
    name_option,
    project_option,
    push_destination_option,
    training_options,
    verbose_option,
)
from detx.pipeline.config import DataConfig, PipelineConfig, Stage

# `detx run`'s own config-backed options, beside the shared ones.
RUN_PATHS: dict[str, tuple[str, ...]] = {
    **CONFIG_PATHS,
    "pattern": ("data", "pattern"),
    "image_dir": ("data", "image_dir"),
    "splits": ("data", "splits"),
    "max_rejected_fraction": ("data", "max_rejected_fraction"),
    "max_pixels": ("data", "max_pixels"),
    "span": ("data", "span"),
    "until": ("stop_after",),
    "schema_file": ("schema_file",),
    "batch_size": ("trainer", "batch_size"),
    "pretrained": ("trainer", "pretrained"),
    "restore_scope": ("trainer", "restore_scope"),
    "freeze_batchnorm": ("trainer", "freeze_batchnorm"),
    "seed": ("trainer", "seed"),
    "baseline": ("baseline",),
}


def _splits(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, int] | None:
    if value is None:
        return None
    splits: dict[str, int] = {}
    for part in value.split(","):
        name, _, buckets = part.partition("=")
        if not name or not buckets.isdigit() or int(buckets) <= 0:
            raise click.BadParameter(f"expected name=buckets[,name=buckets...], e.g. train=4,eval=1; got {value!r}")
        splits[name.strip()] = int(buckets)
    return splits


def _path_or_keyword(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """A local path made absolute; keywords (auto, none, production) and URIs unchanged."""
    from detx.pipeline.project import absolute

    return value if value in (None, "", "auto", "none", PRODUCTION) else absolute(value)


def _default(cls: type, field: str) -> str:
    return f"[default: {default_of(cls, field)}]"


def _pin_production(config: PipelineConfig, project_dir: str) -> PipelineConfig:
    """`--pretrained production` as the served version's directory, so TFX's cache key follows production."""
    import dataclasses

    from detx.components.trainer.pretrained import pin_production
    from detx.pipeline.project import ProjectPaths

    if config.trainer.pretrained != PRODUCTION:
        return config
    destination = ProjectPaths(project_dir).push_destination(config.name, config.push_destination)
    pinned = pin_production(config.trainer.pretrained, destination)
    return dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, pretrained=pinned))


@click.command("run")
@config_option
@data_option("The labelled dataset, or a span root with --span-window.", type=click.Path(exists=True, file_okay=False))
@format_option()
@project_option
@click.option(
    "--until",
    help=f"Last stage: {', '.join(s.value for s in Stage)}. "
    f"[default: {default_of(PipelineConfig, 'stop_after').value}]",
)
@name_option()
@click.option("--split", "splits", callback=_splits, help="Hash buckets per split. [default: train=4,eval=1]")
@click.option("--pattern", help="Annotation files relative to --data (default: the format's).")
@click.option("--image-dir", help="Image folder relative to --data (default: the format's).")
@click.option(
    "--max-rejected-fraction", type=click.FloatRange(0, 1), help=_default(DataConfig, "max_rejected_fraction")
)
@click.option("--max-pixels", type=click.IntRange(min=1), help=_default(DataConfig, "max_pixels"))
@click.option("--span-window", type=click.IntRange(min=0), help="--data is a span root: read this many newest spans.")
@click.option("--span", type=click.IntRange(min=0), help="With --span-window: the newest span to read.")
@click.option("--schema", "schema_file", help="Schema template replacing detx's own.")
@training_options()
@click.option("--batch-size", type=click.IntRange(min=0), help="Overrides the preset's batch size.")
@click.option(
    "--pretrained",
    callback=_path_or_keyword,
    help="production (warm start from the served version), a detx model dir, a Model Zoo model dir, "
    "or ImageNet MobileNetV2 .h5 weights.",
)
@click.option(
    "--restore-scope",
    type=click.Choice(RESTORE_SCOPES),
    help=f"What a Model Zoo checkpoint restores. {_default(TrainerOptions, 'restore_scope')}",
)
@click.option("--freeze-batchnorm", is_flag=True, default=None, help="Fixed BN statistics, trained gamma and beta.")
@click.option("--seed", type=int, help=_default(TrainerOptions, "seed"))
@push_destination_option()
@click.option(
    "--baseline",
    callback=_path_or_keyword,
    help=f"auto (the served version), none, or a SavedModel dir. {_default(PipelineConfig, 'baseline')}",
)
@click.option("--no-cache", is_flag=True, help="Run every component even if its inputs did not change.")
@verbose_option
@click.pass_context
def run_command(ctx: click.Context, project_dir: str, no_cache: bool, verbose: bool, **_: object) -> None:
    """Run the whole pipeline locally (LocalDagRunner, Beam DirectRunner, SQLite ML Metadata).

    ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, DataGate, Trainer,
    Evaluator (COCO mAP, blessing against the served model), Pusher. Options
    given here override the config file; both override detx's defaults.
    """
    import dataclasses

    config = build_config(ctx, RUN_PATHS)
    if no_cache:
        config = dataclasses.replace(config, enable_cache=False)
    config = _pin_production(config, project_dir)
    if not os.path.isdir(config.data.path) and "://" not in config.data.path:
        raise click.UsageError(f"the data folder {config.data.path} does not exist")
    from detx.pipeline.local_runner import PipelineRunFailed, run_local
    from detx.pipeline.project import ProjectPaths
    from detx.pipeline.run_report import format_summary, latest_run

    paths = ProjectPaths(project_dir)
    click.echo(
        f"detx run: {config.data.path} ({config.data.format}) until {config.stop_after.value}; "
        f"project {paths.project_dir}"
    )
    try:
        result = run_local(config, project_dir, echo=click.echo, verbose=verbose)
    except PipelineRunFailed as e:
        click.echo(f"\nThe run stopped at {e.node or 'start-up'}:\n{e.cause}\n\nFull log: {e.log_path}", err=True)
        sys.exit(1)
    click.echo("")
    click.echo(format_summary(latest_run(paths.metadata_path, config.name)))
    click.echo(f"Artifacts: {paths.pipeline_root}\nML Metadata: {paths.metadata_path}\nFull log: {result.log_path}")
