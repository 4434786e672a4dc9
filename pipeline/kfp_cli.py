"""The Kubeflow commands of the `detx` CLI: compile, submit, schedule, runs."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

DEFAULT_PACKAGE = os.path.join("kfp_manifests", "detx_pipeline.yaml")


def _connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--host", required=True, envvar="KF_PIPELINES_ENDPOINT", help="KFP API URL [env KF_PIPELINES_ENDPOINT]."
        ),
        click.option("--token", envvar="DETX_KFP_TOKEN", help="Bearer token [env DETX_KFP_TOKEN]."),
        click.option(
            "--token-file",
            type=click.Path(exists=True, dir_okay=False),
            help="Read the bearer token from a file (e.g. a projected service account token).",
        ),
        click.option(
            "--cookie",
            envvar="DETX_KFP_COOKIE",
            help="Cookie header, e.g. authservice_session=... [env DETX_KFP_COOKIE].",
        ),
        click.option("--namespace", help="Kubeflow profile namespace (multi-user Kubeflow)."),
        click.option("--insecure", is_flag=True, help="Skip TLS certificate checks (test clusters only)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _connection(
    host: str, token: str | None, token_file: str | None, cookie: str | None, namespace: str | None, insecure: bool
) -> Any:
    from detx.pipeline.kfp_client import Connection

    if token_file:
        with open(token_file) as f:
            token = f.read().strip()
    return Connection(host=host, token=token, cookie=cookie, namespace=namespace, verify_ssl=not insecure)


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(1)


def _config(config_files: tuple[str, ...], overrides: dict[str, Any]) -> Any:
    from detx.pipeline.config_file import ConfigError, build_config, layered_values

    try:
        return build_config(layered_values(config_files, overrides))
    except ConfigError as e:
        raise click.UsageError(str(e)) from e


@click.command("compile")
@click.option(
    "--config",
    "config_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Pipeline config (YAML); repeat to layer files, e.g. a Beam runner config on top.",
)
@click.option("--output", default=DEFAULT_PACKAGE, show_default=True, type=click.Path(dir_okay=False))
@click.option("--image", help="The detx pipeline image every step runs (overrides kubeflow.image).")
@click.option("--pipeline-root", help="gs:// (or other) artifact root (overrides kubeflow.pipeline_root).")
def compile_command(config_files: tuple[str, ...], output: str, image: str | None, pipeline_root: str | None) -> None:
    """Compile the pipeline to a Kubeflow Pipelines v2 spec (the file the KFP UI uploads).

    The same create_pipeline `detx run` uses, with data_root, data_span,
    train_steps, pretrained, push_destination, min_map_50 and max_map_50_drop
    as run parameters, and the Trainer on a GPU.
    """
    overrides: dict[str, Any] = {}
    if image:
        overrides.setdefault("kubeflow", {})["image"] = image
    if pipeline_root:
        overrides.setdefault("kubeflow", {})["pipeline_root"] = pipeline_root
    config = _config(config_files, overrides)
    from detx.pipeline import kfp_compile, run_parameters

    if not config.push_destination:
        raise click.UsageError("set push_destination (the TF Serving model base path, e.g. gs://bucket/models/detx)")
    spec = kfp_compile.compile_to_file(config, output)
    steps = list(spec["root"]["dag"]["tasks"])
    click.echo(f"Compiled {len(steps)} steps to {output} (image {config.kubeflow.image})")
    gpu = f"{config.kubeflow.trainer_gpus} x {config.kubeflow.gpu_type}" if config.kubeflow.trainer_gpus else "no GPU"
    click.echo(f"Trainer: {gpu}; not cached by KFP: {', '.join(kfp_compile.UNCACHED_STEPS)}")
    click.echo("Run parameters: " + ", ".join(f"{k}={v!r}" for k, v in run_parameters.plain_values(config).items()))


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    from detx.pipeline.run_parameters import parse_overrides

    try:
        return parse_overrides(list(pairs))
    except ValueError as e:
        raise click.UsageError(str(e)) from e


@click.command("submit")
@_connection_options
@click.option("--package", default=DEFAULT_PACKAGE, show_default=True, type=click.Path(dir_okay=False))
@click.option("--experiment", default="detx", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A run parameter; repeat for more.")
@click.option("--run-name", help="[default: <pipeline> <date time>]")
def submit_command(package: str, experiment: str, params: tuple[str, ...], run_name: str | None, **conn: Any) -> None:
    """Upload the pipeline (or reuse the same version) and start a run on Kubeflow Pipelines."""
    from detx.pipeline.kfp_client import KfpError, submit

    values = _params(params)
    connection = _connection(**conn)
    name = run_name or f"detx {time.strftime('%Y-%m-%d %H:%M:%S')}"
    try:
        ref, run_id = submit(connection, package, experiment, values, name)
    except KfpError as e:
        _fail(e)
    state = "reused" if ref.reused else "uploaded"
    click.echo(f"Pipeline {ref.name}: version {ref.version_id} ({state})")
    click.echo(f"Run {run_id} started in experiment {experiment!r}")
    click.echo(f"  {connection.host.rstrip('/')}/#/runs/details/{run_id}")


@click.command("schedule")
@_connection_options
@click.option("--cron", required=True, help="Six fields, seconds first: '0 0 3 * * *' = every day at 03:00.")
@click.option("--max-concurrency", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--catchup/--no-catchup", default=False, show_default=True, help="Back-fill missed intervals.")
@click.option("--package", default=DEFAULT_PACKAGE, show_default=True, type=click.Path(dir_okay=False))
@click.option("--experiment", default="detx", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A run parameter; repeat for more.")
@click.option("--name", "schedule_name", default="detx continuous training", show_default=True)
def schedule_command(
    cron: str,
    max_concurrency: int,
    catchup: bool,
    package: str,
    experiment: str,
    params: tuple[str, ...],
    schedule_name: str,
    **conn: Any,
) -> None:
    """Create a recurring run on Kubeflow Pipelines: retrain on a clock."""
    from detx.pipeline.kfp_client import KfpError, schedule

    values = _params(params)
    connection = _connection(**conn)
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
        )
    except KfpError as e:
        _fail(e)
    click.echo(f"Pipeline {ref.name}: version {ref.version_id} ({'reused' if ref.reused else 'uploaded'})")
    click.echo(
        f"Recurring run {job_id} ({schedule_name!r}): cron '{cron}', at most {max_concurrency} at a time, "
        f"{'back-fills' if catchup else 'no back-fill of'} missed intervals"
    )


@click.command("runs")
@_connection_options
@click.option("--experiment", help="Only this experiment's runs.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 200))
def runs_command(experiment: str | None, limit: int, **conn: Any) -> None:
    """List recent Kubeflow Pipelines runs with their state."""
    from detx.pipeline.kfp_client import KfpError, recent_runs

    connection = _connection(**conn)
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


COMMANDS = (compile_command, submit_command, schedule_command, runs_command)
