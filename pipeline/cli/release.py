"""`detx models approve` and `detx models reject`: sign-off on candidates pushed with `release.approval: required`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from detx.pipeline.cli.options import model_place, models_options, stack

_decision_options = stack(
    click.argument("version", type=click.IntRange(min=1)),
    click.option("--by", required=True, help="Who decides (recorded in the version's lineage and model card)."),
    click.option("--reason", required=True, help="Why (recorded with the name and the time)."),
    models_options(),
)


if TYPE_CHECKING:
    from detx.components.model_store import ModelStore


def _store(ctx: click.Context) -> ModelStore:
    from detx.components.model_store import ModelStore

    return ModelStore(model_place(ctx).push_destination)


@click.command("approve")
@_decision_options
@click.pass_context
def approve_command(ctx: click.Context, version: int, by: str, reason: str, **_: object) -> None:
    """Serve a pending candidate: it becomes the served version in one step.

    If another version is served than the one the candidate was evaluated
    against (a rollback, another approval), both are first scored again on
    the candidate's eval split with the thresholds of its evaluation; if the
    candidate fails, nothing changes and the command fails.
    """
    from detx.components.model_store import ModelStoreError
    from detx.components.pusher.lineage import card_files
    from detx.components.release import approval
    from detx.components.release.recheck import recheck

    store = _store(ctx)
    try:
        baseline = store.lineage_at(store.pending_path(version)).get("baseline", {}).get("version")
        decision = approval.approve(store, version, by, reason, recheck, derived=card_files(store, baseline))
    except ModelStoreError as e:
        raise click.ClickException(str(e)) from e
    checked = decision.recheck
    if checked:
        click.echo(
            f"Production changed to version {checked['against']} after the evaluation; re-checked on "
            f"{checked.get('examples', 0)} eval images: candidate mAP@0.5 {checked.get('candidate_map_50', 0):.3f}, "
            f"version {checked['against']} {checked.get('production_map_50', 0):.3f}"
        )
    if decision.state == "refused":
        raise click.ClickException(
            f"version {version} not approved: {'; '.join(checked['reasons'])}. It stays pending; "
            f"`detx models reject {version}` retires it"
        )
    click.echo(f"Approved version {version} by {by}: now served (was {decision.previous}) -> {decision.path}")


@click.command("reject")
@_decision_options
@click.pass_context
def reject_command(ctx: click.Context, version: int, by: str, reason: str, **_: object) -> None:
    """Retire a pending candidate: it is never served; the decision is recorded with it."""
    from detx.components.model_store import ModelStoreError
    from detx.components.pusher.lineage import card_files
    from detx.components.release import approval

    store = _store(ctx)
    try:
        baseline = store.lineage_at(store.pending_path(version)).get("baseline", {}).get("version")
        decision = approval.reject(store, version, by, reason, derived=card_files(store, baseline))
    except ModelStoreError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Rejected version {version} by {by}; retired to {decision.path}; served stays {decision.previous}")
