"""The continuous-training commands of the `detx` CLI: `data add-span`, `ct check`, `ct run`."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

# Command-line option -> place in the config file's mapping (`detx ct check` and `detx ct run`).
_CT_OPTIONS: dict[str, tuple[str, ...]] = {
    "data_path": ("data", "path"),
    "fmt": ("data", "format"),
    "span_window": ("data", "span_window"),
    "name": ("name",),
    "push_destination": ("push_destination",),
    "min_new_images": ("ct", "min_new_images"),
    "max_age_days": ("ct", "max_model_age_days"),
    "request_log": ("ct", "request_log"),
    "state_dir": ("ct", "state_dir"),
}
_RUN_ONLY: dict[str, tuple[str, ...]] = {
    "preset": ("trainer", "preset"),
    "train_steps": ("train_steps",),
    "min_map50": ("evaluator", "min_map_50"),
}


@click.command("add-span")
@click.option("--root", required=True, help="The data root (span-1/, span-2/, ...); created if missing.")
@click.option("--data", "dataset", required=True, type=click.Path(exists=True, file_okay=False), help="The new data.")
@click.option("--format", "fmt", default="coco", show_default=True, type=click.Choice(["coco", "voc", "tfrecord"]))
@click.option("--span", type=click.IntRange(min=0), help="The span number. [default: the newest + 1]")
def add_span_command(root: str, dataset: str, fmt: str, span: int | None) -> None:
    """Add a labelled dataset to a data root as the next span (checked first; appears all at once)."""
    from detx.components.data import spans as spans_lib
    from detx.components.data.scan import DatasetError
    from detx.components.example_gen.executor import scan_source
    from detx.components.example_gen.options import IngestOptions
    from detx.pipeline.cli import _abs

    root = _abs(root) or root
    options = IngestOptions(data_format=fmt, span_window=1)
    try:
        scan = scan_source(options, os.path.abspath(dataset), options.inner_pattern)
        existing = spans_lib.list_spans(root)
        known: tuple[str, ...] = ()
        if existing:
            newest = existing[-1]
            previous = scan_source(options, spans_lib.span_dir(root, newest), options.inner_pattern)
            known = previous.label_map.names
            # Fails now, not in the next pipeline run, if the spans cannot be read together.
            spans_lib.merge_scans([(newest, previous), (newest + 1, scan)])
        added = spans_lib.add_span(root, os.path.abspath(dataset), span)
    except DatasetError as e:
        raise click.ClickException(f"{e}\nNothing was added.") from e
    new_classes = [n for n in scan.label_map.names if known and n not in known]
    click.echo(
        f"Added span {added.span} to {root}: {scan.num_records} images, {len(scan.rejects)} rejected while reading "
        f"the annotations ({added.num_files} files copied); classes {', '.join(scan.label_map.names)}"
        + (f" (new: {', '.join(new_classes)})" if new_classes else "")
    )


def _ct_options(fn: Any) -> Any:
    options = [
        click.option(
            "--config",
            "config_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="Pipeline config (YAML, with a `ct` section); repeat to layer files.",
        ),
        click.option("--data", "data_path", help="The span root (span-1/, span-2/, ...)."),
        click.option("--format", "fmt", type=click.Choice(["coco", "voc", "tfrecord"]), help="[default: coco]"),
        click.option("--span-window", type=click.IntRange(min=1), help="Spans a retraining reads. [default: 1]"),
        click.option("--project", "project_dir", default=".detx/project", show_default=True, type=click.Path()),
        click.option("--name", help="Pipeline (and model) name. [default: detx]"),
        click.option(
            "--push-destination", help="The model base path in production. [default: <project>/models/<name>]"
        ),
        click.option("--min-new-images", type=click.IntRange(min=1), help="[default: 500]"),
        click.option("--max-age-days", type=click.FloatRange(min=0), help="0 = never. [default: 30]"),
        click.option("--request-log", help="detx serve's --request-log dir: live quality and skew."),
        click.option("--state-dir", help="Lock and record of retrainings. [default: <project>/ct]"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _ct_config(ctx: click.Context, mapping: dict[str, tuple[str, ...]]) -> Any:
    from detx.pipeline.cli import _abs, _overrides
    from detx.pipeline.config_file import ConfigError, build_config, layered_values

    for key in ("data_path", "push_destination", "request_log", "state_dir"):
        if ctx.params.get(key):
            ctx.params[key] = _abs(ctx.params[key])
    try:
        config = build_config(layered_values(ctx.params["config_files"], _overrides(ctx, mapping)))
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    return config


@click.group("ct")
def ct_group() -> None:
    """Continuous training: decide when to retrain (drift, new data, age, live quality) and do it."""


@ct_group.command("check")
@_ct_options
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.pass_context
def check_command(ctx: click.Context, as_json: bool, project_dir: str, **_: Any) -> None:
    """Say whether to retrain now, and why (exit 0 either way; see --json for scripts)."""
    from detx.components.data.scan import DatasetError
    from detx.pipeline.ct.check import check
    from detx.pipeline.ct.run import ingest_options, push_destination

    config = _ct_config(ctx, _CT_OPTIONS)
    echo = (lambda _: None) if as_json else (lambda line: click.echo(line, err=True))
    try:
        decision = check(
            config.data.path, ingest_options(config), push_destination(config, project_dir), config.ct, echo=echo
        )
    except (DatasetError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(decision.to_dict(), indent=1) if as_json else decision.format())


@ct_group.command("run")
@_ct_options
@click.option("--preset", type=click.Choice(["zoo320", "tiny"]), help="Model preset of the retraining.")
@click.option("--train-steps", type=click.IntRange(min=1), help="Training steps of the retraining.")
@click.option("--min-map50", type=click.FloatRange(0, 1), help="The Evaluator's floor.")
@click.option("--force", is_flag=True, help="Retrain even if no trigger fired or this situation was tried.")
@click.option("--kubeflow-host", envvar="KF_PIPELINES_ENDPOINT", help="Submit to this KFP instead of running here.")
@click.option("--package", default=os.path.join("kfp_manifests", "detx_pipeline.yaml"), show_default=True)
@click.option("--experiment", default="detx", show_default=True)
@click.option("--token", envvar="DETX_KFP_TOKEN", help="KFP bearer token [env DETX_KFP_TOKEN].")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), help="Read the KFP token from a file.")
@click.option("--cookie", envvar="DETX_KFP_COOKIE", help="KFP session cookie [env DETX_KFP_COOKIE].")
@click.option("--namespace", help="Kubeflow profile namespace (multi-user Kubeflow).")
@click.option("--insecure", is_flag=True, help="Skip TLS certificate checks (test clusters only).")
@click.option("-v", "--verbose", is_flag=True, help="Print TFX's and Beam's logs too.")
@click.pass_context
def run_command(
    ctx: click.Context,
    project_dir: str,
    force: bool,
    kubeflow_host: str | None,
    package: str,
    experiment: str,
    token: str | None,
    token_file: str | None,
    cookie: str | None,
    namespace: str | None,
    insecure: bool,
    verbose: bool,
    **_: Any,
) -> None:
    """Check, then retrain once (locally, or as a Kubeflow run): safe from cron, never two at once."""
    from detx.components.data.scan import DatasetError
    from detx.pipeline.ct.run import KubeflowTarget, run_once
    from detx.pipeline.ct.state import Busy
    from detx.pipeline.kfp_cli import _connection
    from detx.pipeline.kfp_client import KfpError
    from detx.pipeline.local_runner import PipelineRunFailed

    config = _ct_config(ctx, {**_CT_OPTIONS, **_RUN_ONLY})
    target = None
    if kubeflow_host:
        connection = _connection(kubeflow_host, token, token_file, cookie, namespace, insecure)
        target = KubeflowTarget(connection, package, experiment)
    try:
        result = run_once(config, project_dir, echo=click.echo, force=force, kubeflow=target, verbose=verbose)
    except Busy as e:
        click.echo(f"detx ct run: {e}")
        return
    except (DatasetError, KfpError) as e:
        raise click.ClickException(str(e)) from e
    except PipelineRunFailed as e:
        click.echo(
            f"\nThe retraining stopped at {e.node or 'start-up'}:\n{e.cause}\n\nFull log: {e.log_path}", err=True
        )
        sys.exit(1)
    click.echo(f"detx ct run: {result.outcome}")


def register(main: click.Group, data: click.Group) -> None:
    """Adds the commands to the `detx` CLI."""
    data.add_command(add_span_command)
    main.add_command(ct_group)
