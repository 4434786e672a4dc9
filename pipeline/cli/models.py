"""`detx models` and `detx rollback`: the versions in a push destination."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from detx.pipeline.cli.options import model_place, models_options

if TYPE_CHECKING:
    from detx.components.model_store import ModelStore


@click.command("models")
@click.option(
    "--card",
    "card_version",
    type=click.IntRange(min=1),
    metavar="VERSION",
    help="Print where the model card of VERSION is (HTML and Markdown) instead of the list.",
)
@click.option("--show", is_flag=True, help="With --card: print the card's Markdown.")
@click.option("--rebuild", is_flag=True, help="With --card: render the card again from the version's lineage.")
@models_options()
@click.pass_context
def models_command(ctx: click.Context, card_version: int | None, show: bool, rebuild: bool, **_: object) -> None:
    """List the pushed versions: which one is served, their mAP, data spans and when they were pushed."""
    from detx.components.example_gen.report import describe_spans
    from detx.components.model_store import ModelStore
    from detx.components.release.catalog import describe

    store = ModelStore(model_place(ctx).push_destination)
    if card_version is not None:
        _card(store, card_version, show, rebuild)
        return
    if show or rebuild:
        raise click.UsageError("--show and --rebuild go with --card VERSION")
    rows = describe(store)
    if not rows:
        click.echo(f"No versions in {store.root} yet.")
        return
    click.echo(f"{store.root}:")
    for row in rows:
        state = "serving" if row["serving"] else ("incomplete (ignored)" if not row["complete"] else "")
        if row["pending"]:
            state = f"waiting for approval (detx approve {row['version']} / detx reject {row['version']})"
        score = f"mAP@0.5 {row['map_50']:.3f}" if row["map_50"] is not None else "no lineage"
        spans = describe_spans(row["spans"]) if row["spans"] else ""
        start = row["warm_start_version"]
        origin = f"from v{start}" if start is not None else ""
        tflite = f"tflite {'+'.join(row['tflite'])}" if row["tflite"] else ""
        line = f"  {row['version']:>4}  {score:<18} {spans:<12} {origin:<8} {row['pushed_at'] or '':<34} {state}"
        line = f"{line.rstrip()}  {tflite}" if tflite else line
        click.echo(line.rstrip())
    retired = store.retired_versions()
    if retired:
        click.echo(f"  retired by rollbacks: {', '.join(map(str, retired))}")


def _card(store: ModelStore, version: int, show: bool, rebuild: bool) -> None:
    """Prints where VERSION's model card is (re-rendering it first with `rebuild`), or its Markdown."""
    import tensorflow as tf

    from detx.components.model_card import render
    from detx.components.model_card.facts import ModelCardError

    version_dir = render.version_dir(store, version)
    if version_dir is None:
        versions = ", ".join(str(v.version) for v in store.versions()) or "none"
        pending = ", ".join(map(str, store.pending_versions()))
        raise click.ClickException(
            f"there is no version {version} in {store.root} (versions: {versions}"
            + (f"; pending approval: {pending}" if pending else "")
            + ")"
        )
    if rebuild:
        try:
            render.rebuild(store, version)
        except ModelCardError as e:
            raise click.ClickException(str(e)) from e
    html, md = (os.path.join(version_dir, name) for name in (render.CARD_HTML, render.CARD_MD))
    if not (tf.io.gfile.exists(html) and tf.io.gfile.exists(md)):
        raise click.ClickException(
            f"version {version} has no model card (it was pushed before detx wrote cards, or by another tool); "
            f"make one from its lineage with: detx models --card {version} --rebuild"
        )
    if show:
        with tf.io.gfile.GFile(md) as f:
            click.echo(f.read(), nl=False)
        return
    click.echo(f"Model card of version {version}{' (rebuilt)' if rebuild else ''}:")
    click.echo(f"  HTML:     {html}")
    click.echo(f"  Markdown: {md}")


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
