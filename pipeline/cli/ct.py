"""`detx ct check` and `detx ct run`: decide when to retrain (drift, new data, age, live quality) and do it."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from detx.pipeline.cli.options import (
    CONFIG_PATHS,
    absolute_callback,
    build_config,
    data_option,
    default_of,
    experiment_option,
    format_option,
    kubeflow_connection,
    kubeflow_options,
    models_options,
    package_option,
    stack,
    training_options,
    verbose_option,
)
from detx.pipeline.config import ContinuousTrainingConfig

# `detx ct`'s own config-backed options, beside the shared ones.
CT_PATHS: dict[str, tuple[str, ...]] = {
    **CONFIG_PATHS,
    "min_new_images": ("ct", "min_new_images"),
    "max_age_days": ("ct", "max_model_age_days"),
    "request_log": ("ct", "request_log"),
    "state_dir": ("ct", "state_dir"),
    "warm_start": ("ct", "warm_start"),
}


_ct_options = stack(
    models_options(),
    data_option("The span root (span-1/, span-2/, ...)."),
    format_option(),
    click.option("--span-window", type=click.IntRange(min=1), help="Spans a retraining reads. [default: 1]"),
    click.option("--min-new-images", type=click.IntRange(min=1), help="[default: 500]"),
    click.option("--max-age-days", type=click.FloatRange(min=0), help="0 = never. [default: 30]"),
    click.option(
        "--request-log", callback=absolute_callback, help="detx serve's --request-log dir: live quality and skew."
    ),
    click.option(
        "--state-dir",
        callback=absolute_callback,
        help="Lock, record of retrainings, staleness curve. [default: <project>/ct]",
    ),
    click.option(
        "--max-staleness-drop",
        type=click.FloatRange(0, 1),
        default=0.0,
        show_default=True,
        help="Retrain when the served model's mAP@0.5 on the newest span's eval split is this far below "
        "its own (mAP@0.5 points; 0 = report the staleness curve only).",
    ),
)


@click.group("ct")
def ct_group() -> None:
    """Continuous training: decide when to retrain (drift, new data, age, live quality) and do it."""


@ct_group.command("check")
@_ct_options
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.pass_context
def check_command(ctx: click.Context, as_json: bool, project_dir: str, max_staleness_drop: float, **_: Any) -> None:
    """Say whether to retrain now, and why (exit 0 either way; see --json for scripts).

    Also scores the served model on each new span's eval split (the staleness
    curve, kept in the state directory) and, with --request-log, compares
    each logged version's live confidence with its eval split's.
    """
    from detx.components.data.scan import DatasetError
    from detx.pipeline.ct.check import check
    from detx.pipeline.ct.run import ingest_options, push_destination, quality_options

    config = build_config(ctx, CT_PATHS)
    echo = (lambda _: None) if as_json else (lambda line: click.echo(line, err=True))
    try:
        decision = check(
            config.data.path,
            ingest_options(config),
            push_destination(config, project_dir),
            config.ct,
            echo=echo,
            quality_options=quality_options(config, project_dir, max_staleness_drop),
        )
    except (DatasetError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(decision.to_dict(), indent=1) if as_json else decision.format())


@ct_group.command("run")
@_ct_options
@training_options()
@click.option("--force", is_flag=True, help="Retrain even if no trigger fired or this situation was tried.")
@click.option(
    "--warm-start/--no-warm-start",
    default=None,
    help="Start from the served version's weights when it has them (else trainer.pretrained). "
    f"[default: {'--warm-start' if default_of(ContinuousTrainingConfig, 'warm_start') else '--no-warm-start'}]",
)
@kubeflow_options(required=False)
@package_option
@experiment_option
@verbose_option
@click.pass_context
def run_command(
    ctx: click.Context,
    project_dir: str,
    force: bool,
    kubeflow_host: str | None,
    package: str,
    experiment: str,
    verbose: bool,
    max_staleness_drop: float,
    **params: Any,
) -> None:
    """Check, then retrain once (locally, or as a Kubeflow run): safe from cron, never two at once."""
    from detx.components.data.scan import DatasetError
    from detx.pipeline.ct.run import KubeflowTarget, run_once
    from detx.pipeline.ct.state import Busy
    from detx.pipeline.kfp_client import KfpError
    from detx.pipeline.local_runner import PipelineRunFailed

    config = build_config(ctx, CT_PATHS)
    target = None
    if kubeflow_host:
        target = KubeflowTarget(kubeflow_connection({**params, "kubeflow_host": kubeflow_host}), package, experiment)
    try:
        result = run_once(
            config,
            project_dir,
            echo=click.echo,
            force=force,
            kubeflow=target,
            verbose=verbose,
            max_staleness_drop=max_staleness_drop,
        )
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
