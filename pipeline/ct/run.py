"""`detx ct run`: check, then retrain locally or on Kubeflow Pipelines, at most once per situation.

Safe from cron or a Kubernetes CronJob:

- one at a time: the state directory's lock (`state.exclusive`); on KFP also
  no new run while one of the pipeline's runs is still active;
- idempotent: a retraining is recorded under the check's key (served version
  + spans); the same key never starts a second one, whatever its outcome (a
  model that was not better stays not better on the same data). New data or a
  new served version makes a new key. `--force` overrides.
- the triggered run reads exactly the window the check looked at (the newest
  span is pinned), and pushes only what its Evaluator blesses against the
  served model.
- with `ct.warm_start` (the default) the retraining starts from the served
  version's weights when it has them: locally from that version's directory
  (so TFX's cache key follows production), on Kubeflow as `pretrained:
  production`, which the Trainer looks up when it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from detx.components.data.ingest_options import IngestOptions
from detx.components.example_gen.report import describe_spans
from detx.components.trainer.options import TrainerOptions
from detx.pipeline.config import PipelineConfig
from detx.pipeline.ct import state as state_lib
from detx.pipeline.ct.check import Decision, check
from detx.pipeline.ct.quality import QualityOptions
from detx.pipeline.project import ProjectPaths

# KFP v2 run states that mean a run is still going.
_ACTIVE_STATES = {"PENDING", "RUNNING", "CANCELING", "PAUSED"}


@dataclasses.dataclass(frozen=True)
class KubeflowTarget:
    """Where `detx ct run --kubeflow` submits.

    Attributes:
        connection: a `detx.pipeline.kfp_client.Connection`.
        package: the compiled pipeline (detx kfp compile).
        experiment: the KFP experiment.
    """

    connection: Any
    package: str
    experiment: str = "detx"


@dataclasses.dataclass(frozen=True)
class CtResult:
    """What a `detx ct run` did.

    Attributes:
        decision: the check.
        started: whether a retraining started.
        outcome: one sentence: why nothing started, or how the retraining ended.
        pushed_version: the version a local retraining pushed (None: none).
    """

    decision: Decision
    started: bool
    outcome: str
    pushed_version: int | None = None


def ingest_options(config: PipelineConfig) -> IngestOptions:
    """The ingestion options of a span-root config (a window of at least one span)."""
    return config.data.as_span_root().ingest_options()


def state_dir(config: PipelineConfig, project_dir: str) -> str:
    """Where the lock and the record of retrainings are."""
    return config.ct.state_dir or ProjectPaths(project_dir).ct_state_dir


def quality_options(config: PipelineConfig, project_dir: str, max_staleness_drop: float = 0.0) -> QualityOptions:
    """Where the check keeps its staleness curve and agreement (the state directory), and the staleness limit."""
    return QualityOptions(state_dir(config, project_dir), config.data.splits, max_staleness_drop)


def push_destination(config: PipelineConfig, project_dir: str) -> str:
    """The model base path in production."""
    return ProjectPaths(project_dir).push_destination(config.name, config.push_destination)


def starting_weights(
    config: PipelineConfig, destination: str, on_kubeflow: bool, echo: Callable[[str], None]
) -> TrainerOptions:
    """The retraining's trainer options: a warm start from the served version when `ct.warm_start` allows it.

    Says what the retraining starts from, and why when it is not production.
    """
    from detx.components.trainer.pretrained import PRODUCTION, describe, production_model

    trainer = config.trainer
    asked = trainer.pretrained == PRODUCTION
    if not (asked or config.ct.warm_start):
        echo(f"starting weights: {describe(trainer.pretrained)} (trainer.pretrained; ct.warm_start is off)")
        return trainer
    version, found = production_model(destination)
    if version is None:
        # With `production` asked for, the Trainer falls back by itself (and says so again).
        key = "pretrained_fallback" if asked else "pretrained"
        echo(f"starting weights: {describe(getattr(trainer, key))} (trainer.{key}): {found}")
        return trainer
    echo(f"starting weights: version {version}, the served version (a warm start)")
    return dataclasses.replace(trainer, pretrained=PRODUCTION if on_kubeflow else found)


def run_once(
    config: PipelineConfig,
    project_dir: str,
    echo: Callable[[str], None] = print,
    force: bool = False,
    kubeflow: KubeflowTarget | None = None,
    verbose: bool = False,
    max_staleness_drop: float = 0.0,
) -> CtResult:
    """Checks and, when a trigger fires, retrains once.

    `max_staleness_drop` is the check's staleness limit (`QualityOptions`; 0: reported only).

    Raises:
        state_lib.Busy: another `detx ct run` holds the lock, or a KFP run of the pipeline is active.
        detx.pipeline.local_runner.PipelineRunFailed: the local retraining failed (recorded as failed).
        detx.pipeline.kfp_client.KfpError: Kubeflow refused the run.
    """
    directory = state_dir(config, project_dir)
    with state_lib.exclusive(directory):
        destination = push_destination(config, project_dir)
        decision = check(
            config.data.path,
            ingest_options(config),
            destination,
            config.ct,
            echo=echo,
            quality_options=quality_options(config, project_dir, max_staleness_drop),
        )
        echo(decision.format())
        if not decision.retrain and not force:
            return CtResult(decision, False, "no trigger fired; nothing started")
        records = state_lib.State(directory)
        previous = records.find(decision.key)
        if previous is not None and not force:
            how = previous.outcome or "still running or interrupted"
            return CtResult(
                decision,
                False,
                f"a retraining for this situation ({decision.key}) already ran at {previous.started}: {how}; "
                "nothing changed since (add a span, or --force to retrain anyway)",
            )
        reasons = decision.reasons or ["--force"]
        newest = decision.window[-1]
        run_config = dataclasses.replace(
            config,
            data=dataclasses.replace(config.data.as_span_root(), span=newest),
            push_destination=destination,
            trainer=starting_weights(config, destination, on_kubeflow=kubeflow is not None, echo=echo),
        )
        if kubeflow is not None:
            return _submit(run_config, decision, records, reasons, kubeflow)
        return _run_local(run_config, project_dir, decision, records, reasons, echo, verbose)


def _run_local(
    config: PipelineConfig,
    project_dir: str,
    decision: Decision,
    records: state_lib.State,
    reasons: list[str],
    echo: Callable[[str], None],
    verbose: bool,
) -> CtResult:
    from detx.pipeline.local_runner import PipelineRunFailed, run_local
    from detx.pipeline.run_report import format_summary, latest_run, push_record

    attempt = records.start(decision.key, reasons)
    echo(f"retraining on {describe_spans(decision.window)}: {'; '.join(reasons)}")
    try:
        run_local(config, project_dir, echo=echo, verbose=verbose)
    except PipelineRunFailed as e:
        records.finish(attempt, f"failed at {e.node or 'start-up'}: {e.cause}")
        raise
    echo("")
    runs = latest_run(ProjectPaths(project_dir).metadata_path, config.name)
    echo(format_summary(runs))
    push = push_record(runs) or {}
    kept = f"version {decision.served_version}" if decision.served_version is not None else "no version"
    pushed: int | None = push.get("version") if push.get("pushed") else None
    if pushed is not None and push.get("pending"):
        outcome = (
            f"pushed version {pushed}, waiting for approval (detx models approve {pushed}); {kept} stays in production"
        )
    elif pushed is not None:
        outcome = f"pushed version {pushed}"
    else:
        outcome = f"not pushed ({push.get('reason', 'the Pusher did not run')}); {kept} stays in production"
    records.finish(attempt, outcome)
    return CtResult(decision, True, outcome, pushed)


def _submit(
    config: PipelineConfig,
    decision: Decision,
    records: state_lib.State,
    reasons: list[str],
    target: KubeflowTarget,
) -> CtResult:
    from detx.components.trainer.options import PRODUCTION
    from detx.pipeline.kfp_client import recent_runs, submit

    runs = recent_runs(target.connection, target.experiment, 20, missing_ok=True)
    active = [r for r in runs if r.state.upper() in _ACTIVE_STATES]
    if active:
        raise state_lib.Busy(
            f"run {active[0].run_id} ({active[0].name}) of experiment {target.experiment!r} is {active[0].state}; "
            "not starting a second retraining"
        )
    attempt = records.start(decision.key, reasons)
    params = {"data_root": config.data.path, "data_span": decision.window[-1]}
    if config.push_destination:
        params["push_destination"] = config.push_destination
    params["approval"] = config.release.approval  # the ct config's release rule, whatever the spec was compiled with
    if config.trainer.pretrained == PRODUCTION:
        params["pretrained"] = PRODUCTION  # a warm start: the Trainer looks the served version up when it runs
    name = f"detx ct: {describe_spans(decision.window)}"
    try:
        _, run_id = submit(target.connection, target.package, target.experiment, params, name)
    except Exception as e:
        records.finish(attempt, f"failed to submit: {e}")
        raise
    outcome = f"submitted Kubeflow run {run_id}"
    records.finish(attempt, outcome)
    return CtResult(decision, True, outcome)
