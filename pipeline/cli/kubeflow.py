"""`detx kfp compile|upload|submit|schedule|runs`: the pipeline on Kubeflow Pipelines (v2, open-source backend)."""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import click

from detx.pipeline.cli.options import (
    DEFAULT_PACKAGE,
    AliasedOption,
    build_config,
    config_option,
    experiment_option,
    kubeflow_connection,
    kubeflow_options,
    package_option,
    pipeline_root_option,
    service_account_option,
)

# Before one name per idea, `--host` named the KFP API URL here (it is the bind address of serve/web).
_CONNECTION = kubeflow_options(required=True, hidden_aliases=("--host",))
_PARAM = click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="A run parameter; repeat for more."
)


def _fail(error: Exception) -> NoReturn:
    click.echo(f"error: {error}", err=True)
    sys.exit(1)


@click.group("kfp")
def kfp_group() -> None:
    """Kubeflow Pipelines: compile the pipeline, upload it, run it, schedule it, list its runs."""


@kfp_group.command("compile")
@config_option
# `--out` names what a command writes, as in data synth, infer, review and export; `--output` was its old name.
@click.option(
    "--out",
    "--output",
    "out",
    cls=AliasedOption,
    hidden_aliases=("--output",),
    default=DEFAULT_PACKAGE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The spec file to write.",
)
@click.option("--image", help="The detx pipeline image every step runs (overrides kubeflow.image).")
@pipeline_root_option
@click.pass_context
def compile_command(ctx: click.Context, out: str, image: str | None, pipeline_root: str | None, **_: Any) -> None:
    """Compile the pipeline to a Kubeflow Pipelines v2 spec (the file the KFP UI uploads).

    The same create_pipeline `detx run` uses, with data_root, data_span,
    train_steps, pretrained, push_destination, min_map_50 and max_map_50_drop
    as run parameters, and the Trainer on a GPU.
    """
    config = build_config(ctx, {"image": ("kubeflow", "image"), "pipeline_root": ("kubeflow", "pipeline_root")})
    from detx.pipeline import kfp_compile, run_parameters

    if not config.push_destination:
        raise click.UsageError("set push_destination (the TF Serving model base path, e.g. gs://bucket/models/detx)")
    spec = kfp_compile.compile_to_file(config, out)
    steps = list(spec["root"]["dag"]["tasks"])
    click.echo(f"Compiled {len(steps)} steps to {out} (image {config.kubeflow.image})")
    gpu = f"{config.kubeflow.trainer_gpus} x {config.kubeflow.gpu_type}" if config.kubeflow.trainer_gpus else "no GPU"
    click.echo(f"Trainer: {gpu}; not cached by KFP: {', '.join(kfp_compile.UNCACHED_STEPS)}")
    click.echo("Run parameters: " + ", ".join(f"{k}={v!r}" for k, v in run_parameters.plain_values(config).items()))


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    from detx.pipeline.run_parameters import parse_overrides

    try:
        return parse_overrides(list(pairs))
    except ValueError as e:
        raise click.UsageError(str(e)) from e


@kfp_group.command("submit")
@_CONNECTION
@package_option
@experiment_option
@_PARAM
@click.option("--run-name", help="[default: <pipeline> <date time>]")
@pipeline_root_option
@service_account_option
def submit_command(
    package: str,
    experiment: str,
    params: tuple[str, ...],
    run_name: str | None,
    pipeline_root: str | None,
    service_account: str,
    **conn: Any,
) -> None:
    """Upload the pipeline (or reuse the same version) and start a run on Kubeflow Pipelines."""
    from detx.pipeline.kfp_client import KfpError, submit

    values = _params(params)
    connection = kubeflow_connection(conn)
    name = run_name or f"detx {time.strftime('%Y-%m-%d %H:%M:%S')}"
    try:
        ref, run_id = submit(connection, package, experiment, values, name, pipeline_root, service_account)
    except KfpError as e:
        _fail(e)
    state = "reused" if ref.reused else "uploaded"
    click.echo(f"Pipeline {ref.name}: version {ref.version_id} ({state})")
    click.echo(f"Run {run_id} started in experiment {experiment!r}")
    click.echo(f"  {connection.host.rstrip('/')}/#/runs/details/{run_id}")


@kfp_group.command("upload")
@_CONNECTION
@package_option
@click.option(
    "--summary",
    type=click.Path(dir_okay=False),
    help="Also append a markdown line to this file (a GitHub job summary: $GITHUB_STEP_SUMMARY).",
)
def upload_command(package: str, summary: str | None, **conn: Any) -> None:
    """Upload the pipeline as a new version without starting a run (or name the identical version already there)."""
    from detx.pipeline import kfp_client

    connection = kubeflow_connection(conn)
    try:
        ref = kfp_client.ensure_pipeline(kfp_client.connect(connection), connection, package)
    except kfp_client.KfpError as e:
        _fail(e)
    what = "already there as" if ref.reused else "uploaded as"
    line = f"Pipeline {ref.name} {what} version {ref.version_id} (pipeline {ref.pipeline_id}) on {connection.host}"
    click.echo(line)
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(f"- {line}\n")


@kfp_group.command("schedule")
@_CONNECTION
@click.option("--cron", required=True, help="Six fields, seconds first: '0 0 3 * * *' = every day at 03:00.")
@click.option("--max-concurrency", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--catchup/--no-catchup", default=False, show_default=True, help="Back-fill missed intervals.")
@package_option
@experiment_option
@_PARAM
@click.option("--schedule-name", default="detx continuous training", show_default=True)
@pipeline_root_option
@service_account_option
def schedule_command(
    cron: str,
    max_concurrency: int,
    catchup: bool,
    package: str,
    experiment: str,
    params: tuple[str, ...],
    schedule_name: str,
    pipeline_root: str | None,
    service_account: str,
    **conn: Any,
) -> None:
    """Create a recurring run on Kubeflow Pipelines: retrain on a clock."""
    from detx.pipeline.kfp_client import KfpError, schedule

    values = _params(params)
    connection = kubeflow_connection(conn)
    try:
        ref, job_id = schedule(
            connection,
            package,
            experiment,
            cron,
            values,
            schedule_name,
            max_concurrency=max_concurrency,
            catchup=catchup,
            pipeline_root=pipeline_root,
            service_account=service_account,
        )
    except KfpError as e:
        _fail(e)
    click.echo(f"Pipeline {ref.name}: version {ref.version_id} ({'reused' if ref.reused else 'uploaded'})")
    click.echo(
        f"Recurring run {job_id} ({schedule_name!r}): cron '{cron}', at most {max_concurrency} at a time, "
        f"{'back-fills' if catchup else 'no back-fill of'} missed intervals"
    )


@kfp_group.command("runs")
@_CONNECTION
@click.option("--experiment", help="Only this experiment's runs.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 200))
def runs_command(experiment: str | None, limit: int, **conn: Any) -> None:
    """List recent Kubeflow Pipelines runs with their state."""
    from detx.pipeline.kfp_client import KfpError, recent_runs

    connection = kubeflow_connection(conn)
    try:
        rows = recent_runs(connection, experiment, limit)
    except KfpError as e:
        _fail(e)
    if not rows:
        click.echo("No runs.")
        return
    header = ("RUN ID", "STATE", "CREATED", "FINISHED", "NAME")
    table = [header] + [(r.run_id, r.state, r.created_at, r.finished_at, r.name) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])


COMMANDS = (kfp_group,)
