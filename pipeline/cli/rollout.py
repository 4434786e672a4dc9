"""`detx rollout start|status|promote|abort`: a pushed candidate through shadow -> canary -> full, or back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from detx.components.release.rollout.options import RolloutOptions
from detx.pipeline.cli.options import (
    METRICS_PORT,
    F,
    canary_percent_option,
    default_of,
    model_place,
    models_options,
    shadow_percent_option,
    stack,
)

if TYPE_CHECKING:
    from detx.components.release.rollout.controller import Rollout

DEFAULT_METRICS_URL = f"http://127.0.0.1:{METRICS_PORT}/metrics"  # `detx serve`'s default --metrics-port on loopback

# One line of help per RolloutOptions field (the reasons for the defaults are in its docstring and docs/rollout.md).
_HELP = {
    "min_requests": "Requests the candidate must answer in a stage before it can pass.",
    "max_error_rate_increase": "Fail if its share of non-OK answers exceeds stable's by more than this.",
    "max_p99_ratio": "Fail if its p99 latency is above this multiple of stable's (and above the slack).",
    "p99_slack_seconds": "A p99 at most this many seconds above stable's passes whatever the ratio.",
    "min_agreement": "Shadow stage: fail below this share of detections both versions found.",
    "max_top_score_drop": "Fail if its live mean top score is this share below stable's.",
    "poll_seconds": "Seconds between readings of the signals.",
}


def _criteria_options() -> Callable[[F], F]:
    """The `RolloutOptions` flags, their defaults read from it."""
    decorators: list[Callable[[F], F]] = [
        shadow_percent_option(
            default_of(RolloutOptions, "shadow_percent"), "Shadow stage: share of stable's requests mirrored (0 skips)."
        ),
        canary_percent_option(
            default_of(RolloutOptions, "canary_percent"), "Canary stage: share of requests it answers (0 skips)."
        ),
    ]
    for name, help_text in _HELP.items():
        default = default_of(RolloutOptions, name)
        kind = click.IntRange(min=1) if isinstance(default, int) else click.FloatRange(min=0)
        decorators.append(
            click.option(f"--{name.replace('_', '-')}", default=default, show_default=True, type=kind, help=help_text)
        )
    return stack(*decorators)


_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(RolloutOptions))

_where_options = stack(
    click.option(
        "--metrics-url",
        default=DEFAULT_METRICS_URL,
        show_default=True,
        help="The /metrics of the `detx serve` that serves the push destination.",
    ),
    click.option(
        "--overlay",
        type=click.Path(exists=True, file_okay=False),
        help="On Kubernetes: write the split into this rollout overlay (serving/k8s/overlays/rollout or "
        "rollout-istio) for `kubectl apply -k`; needs --prometheus.",
    ),
    click.option(
        "--prometheus",
        help="On Kubernetes: read TF Serving's metrics per track from this Prometheus URL; needs --overlay.",
    ),
    click.option(
        "--serving-namespace",
        default="detx-serving",
        show_default=True,
        help="With --prometheus: the namespace the tracks run in.",
    ),
)


def _rollout(ctx: click.Context, params: dict[str, Any]) -> tuple[Rollout, str]:
    """The controller for the command's push destination (a local server, or a cluster), and that destination."""
    from detx.components.model_store import ModelStore
    from detx.components.release.rollout.controller import Rollout

    place = model_place(ctx)
    store = ModelStore(place.push_destination)
    overlay, prometheus = params.get("overlay"), params.get("prometheus")
    if bool(overlay) != bool(prometheus):
        raise click.UsageError(
            "a rollout on Kubernetes needs both --overlay (where the split goes) and --prometheus (where the "
            "signals come from); without either, it drives the local `detx serve` (--metrics-url)"
        )
    if overlay and prometheus:
        from detx.components.release.rollout.kubernetes import KubernetesTarget
        from detx.components.release.rollout.prometheus import PrometheusSource

        source = PrometheusSource(prometheus, model=place.name, namespace=params["serving_namespace"])
        # The cluster follows the overlay only once it is applied: a rolled-back candidate stays until then.
        return Rollout(store, KubernetesTarget(overlay), source, say=click.echo, retire=False), store.root
    from detx.components.release.rollout.local import LocalTarget, ServerMetricsSource

    source_local = ServerMetricsSource(params["metrics_url"], place.name)
    return Rollout(store, LocalTarget(store.root), source_local, say=click.echo), store.root


def _refusals() -> tuple[type[Exception], ...]:
    """Errors a rollout command reports as a message and a non-zero exit (not a traceback)."""
    from detx.components.model_store import ModelStoreError
    from detx.components.release.rollout.controller import RolloutError
    from detx.components.release.rollout.signals import SignalError
    from detx.components.release.rollout.state import RolloutBusy
    from detx.components.release.traffic import TrafficError

    return (RolloutError, RolloutBusy, SignalError, ModelStoreError, TrafficError, ValueError)


@click.group("rollout")
def rollout_group() -> None:
    """Progressive delivery: shadow, canary, then all traffic, judged on live signals (docs/rollout.md)."""


@rollout_group.command("start")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--stable", type=click.IntRange(min=1), help="Compare with this version. [default: the served one]")
@click.option("--once", is_flag=True, help="Take one step (start, or one judgement) and exit.")
@_criteria_options()
@_where_options
@models_options()
@click.pass_context
def start_command(ctx: click.Context, version: int, stable: int | None, once: bool, **params: Any) -> None:
    """Roll VERSION out: shadow, canary, then all traffic; or back, by itself.

    Each stage holds until the candidate answered --min-requests, then passes
    or fails on its error rate, p99 latency, agreement with stable (shadow)
    and live mean top score against stable's over the same stage. A failure
    rolls it back: stable alone serves, the candidate is retired, the reason
    is recorded in its lineage. Every decision is printed with its figures.

    The state is kept in <push destination>/.rollout/: run it again after an
    interruption and it continues. Exit status: 0 promoted (or, with --once,
    in progress), 1 rolled back.
    """
    from detx.components.release.rollout.state import PROMOTED, exclusive

    overrides = {
        name: params[name]
        for name in _OPTION_NAMES
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }
    rollout, root = _rollout(ctx, params)
    try:
        with exclusive(root, f"detx rollout start {version}"):
            before = rollout.state()
            state = rollout.start(version, overrides, stable)
            fresh = before is None or not before.active
            if not (once and fresh):
                state = rollout.follow(state, once=once)
    except _refusals() as e:
        raise click.ClickException(str(e)) from e
    except KeyboardInterrupt:
        raise click.ClickException(
            f"interrupted; the rollout of version {version} stays where it is: "
            f"`detx rollout start {version}` continues it"
        ) from None
    if state.active:
        click.echo(f"Version {version}: {state.stage} stage in progress; `detx rollout start {version}` continues")
    elif state.stage == PROMOTED:
        click.echo(f"Version {version} promoted: it serves all traffic")
    else:
        click.echo(f"Version {version} {state.stage}: {state.reason}")
        ctx.exit(1)


@rollout_group.command("status")
@_where_options
@models_options()
@click.pass_context
def status_command(ctx: click.Context, **params: Any) -> None:
    """Print the rollout: stage, decisions, and the figures now (if the signals can be read)."""
    from detx.components.release.rollout.signals import SignalError
    from detx.components.release.rollout.splits import describe_split

    rollout, root = _rollout(ctx, params)
    try:
        state = rollout.state()
        current = rollout.target.current()
    except _refusals() as e:
        raise click.ClickException(str(e)) from e
    if state is None:
        click.echo(f"No rollout in {root}; traffic: {describe_split(current)}")
        return
    when = f"since {state.stage_started}" if state.active else f"at {state.finished}: {state.reason}"
    click.echo(f"Version {state.candidate} against stable {state.stable}: {state.stage} {when}")
    click.echo(f"traffic: {describe_split(current)} ({rollout.target.describe()})")
    for decision in state.decisions:
        click.echo(f"  [{decision['at']}] {decision['decision']} {decision['what']}")
        for line in decision.get("figures", []):
            click.echo(f"      {line}")
    if not state.active:
        return
    try:
        verdict, restarted = rollout.judge(state)
    except SignalError as e:
        click.echo(f"figures now: cannot read the signals ({e})")
        return
    since = " (since the server restarted)" if restarted else ""
    click.echo(f"figures now{since}: {verdict.judged} of {verdict.needed} requests judged -> {verdict.outcome}")
    for figure in verdict.figures:
        click.echo(f"  {figure.line()}")


def _end(ctx: click.Context, params: dict[str, Any], command: str, act: Callable[[Rollout], Any]) -> None:
    from detx.components.release.rollout.state import exclusive

    rollout, root = _rollout(ctx, params)
    try:
        with exclusive(root, command):
            act(rollout)
    except _refusals() as e:
        raise click.ClickException(str(e)) from e


@rollout_group.command("promote")
@click.option("--reason", default="", help="Why (recorded in the candidate's lineage).")
@_where_options
@models_options()
@click.pass_context
def promote_command(ctx: click.Context, reason: str, **params: Any) -> None:
    """Give the candidate all traffic now, skipping the stages left."""
    _end(ctx, params, "detx rollout promote", lambda rollout: rollout.promote(reason))


@rollout_group.command("abort")
@click.option("--reason", required=True, help="Why (recorded in the candidate's lineage).")
@_where_options
@models_options()
@click.pass_context
def abort_command(ctx: click.Context, reason: str, **params: Any) -> None:
    """Roll the candidate back now: stable alone serves, the candidate is retired."""
    _end(ctx, params, "detx rollout abort", lambda rollout: rollout.abort(reason))


COMMANDS = (rollout_group,)
