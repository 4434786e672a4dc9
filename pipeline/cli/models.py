"""`detx models` and `detx rollback`: the versions in a push destination."""

from __future__ import annotations

import click

from detx.pipeline.cli.options import model_place, models_options


@click.command("models")
@models_options()
@click.pass_context
def models_command(ctx: click.Context, **_: object) -> None:
    """List the pushed versions: which one is served, their mAP, data spans and when they were pushed."""
    from detx.components.example_gen.report import describe_spans
    from detx.components.model_store import ModelStore, describe

    store = ModelStore(model_place(ctx).push_destination)
    rows = describe(store)
    if not rows:
        click.echo(f"No versions in {store.root} yet.")
        return
    click.echo(f"{store.root}:")
    for row in rows:
        state = "serving" if row["serving"] else ("incomplete (ignored)" if not row["complete"] else "")
        score = f"mAP@0.5 {row['map_50']:.3f}" if row["map_50"] is not None else "no lineage"
        spans = describe_spans(row["spans"]) if row["spans"] else ""
        click.echo(f"  {row['version']:>4}  {score:<18} {spans:<12} {row['pushed_at'] or '':<34} {state}".rstrip())
    retired = store.retired_versions()
    if retired:
        click.echo(f"  retired by rollbacks: {', '.join(map(str, retired))}")


@click.command("rollback")
@click.option("--to", "to_version", type=click.IntRange(min=1), help="The version to serve.")
@click.option("--previous", is_flag=True, help="Serve the version below the one served now.")
@models_options()
@click.pass_context
def rollback_command(ctx: click.Context, to_version: int | None, previous: bool, **_: object) -> None:
    """Make an earlier version the served one, without retraining.

    Newer versions move to `.retired/` in the push destination, where TF Serving
    does not look; its latest-version policy then serves the chosen one. Their
    numbers are never reused.
    """
    from detx.components.model_store import ModelStore, ModelStoreError

    if (to_version is None) == (not previous):
        raise click.UsageError("give exactly one of --to VERSION or --previous")
    store = ModelStore(model_place(ctx).push_destination)
    try:
        result = store.rollback(to_version)
    except ModelStoreError as e:
        raise click.ClickException(str(e)) from e
    retired = ", ".join(map(str, result.retired)) or "none"
    click.echo(
        f"Now serving version {result.serving} (was {result.previous}); retired: {retired} -> {store.root}/.retired/"
    )


COMMANDS = (models_command, rollback_command)
