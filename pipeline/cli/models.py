"""`detx models list|card|approve|reject|rollback`: the versions in a push destination, and what is served."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from detx.pipeline.cli.options import model_place, models_options
from detx.pipeline.cli.release import approve_command, reject_command

if TYPE_CHECKING:
    from detx.components.model_store import ModelStore


def _old_spelling(args: list[str]) -> list[str]:
    """The arguments of `detx models` as it was before it had subcommands, as those of `list` or `card`.

    `detx models [OPTIONS]` listed the versions and `detx models --card VERSION [OPTIONS]` showed a
    model card; they are now `detx models list [OPTIONS]` and `detx models card VERSION [OPTIONS]`.

    Args:
        args: What follows `detx models` on a command line that names no subcommand first.

    Returns:
        The same arguments with the subcommand they meant in front (and `--card`'s value as `card`'s
        argument).
    """
    for i, arg in enumerate(args):
        if arg.startswith("--card="):
            return ["card", arg.partition("=")[2], *args[:i], *args[i + 1 :]]
        if arg == "--card":
            # Without a value, `card` says VERSION is missing, as `--card` said it needed one.
            return ["card", *args[i + 1 : i + 2], *args[:i], *args[i + 2 :]]
    return ["list", *args]


class ModelsGroup(click.Group):
    """`detx models`, which also takes the spellings it had before its subcommands (hidden from `--help`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Sends `detx models` alone or followed by options (not `--help`) to `list` or `card`, as it meant.

        A subcommand name or a typo of one is left alone, so a typo is still reported as no such
        command. Shell completion and the CLI reference (resilient parsing) see the group as it is.
        """
        starts_with_option = not args or (args[0].startswith("-") and args[0] not in ctx.help_option_names)
        if starts_with_option and not ctx.resilient_parsing:
            args = _old_spelling(args)
        return super().parse_args(ctx, args)


@click.group("models", cls=ModelsGroup)
def models_group() -> None:
    """The pushed versions: list them, show a model card, approve or reject a candidate, roll back."""


@models_group.command("list")
@models_options()
@click.pass_context
def list_command(ctx: click.Context, **_: object) -> None:
    """List the pushed versions: which one is served, their mAP, data spans and when they were pushed."""
    from detx.components.example_gen.report import describe_spans
    from detx.components.model_store import ModelStore
    from detx.components.release.catalog import describe

    store = ModelStore(model_place(ctx).push_destination)
    rows = describe(store)
    if not rows:
        click.echo(f"No versions in {store.root} yet.")
        return
    click.echo(f"{store.root}:")
    for row in rows:
        state = "serving" if row["serving"] else ("incomplete (ignored)" if not row["complete"] else "")
        if row["pending"]:
            version = row["version"]
            state = f"waiting for approval (detx models approve {version} / detx models reject {version})"
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


@models_group.command("card")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--show", is_flag=True, help="Print the card's Markdown instead of where it is.")
@click.option("--rebuild", is_flag=True, help="Render the card again from the version's lineage first.")
@models_options()
@click.pass_context
def card_command(ctx: click.Context, version: int, show: bool, rebuild: bool, **_: object) -> None:
    """Print where VERSION's model card is (HTML and Markdown), or its Markdown.

    A candidate waiting for approval has one too: its reviewers read it before deciding.
    """
    from detx.components.model_store import ModelStore

    _card(ModelStore(model_place(ctx).push_destination), version, show, rebuild)


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
            f"make one from its lineage with: detx models card {version} --rebuild"
        )
    if show:
        with tf.io.gfile.GFile(md) as f:
            click.echo(f.read(), nl=False)
        return
    click.echo(f"Model card of version {version}{' (rebuilt)' if rebuild else ''}:")
    click.echo(f"  HTML:     {html}")
    click.echo(f"  Markdown: {md}")


@models_group.command("rollback")
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


models_group.add_command(approve_command)
models_group.add_command(reject_command)

COMMANDS = (models_group,)
