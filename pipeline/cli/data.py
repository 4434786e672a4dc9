"""`detx data`: make synthetic datasets and add deliveries to a span root."""

from __future__ import annotations

from typing import Any

import click

from detx.components.data.synth_config import SynthConfig
from detx.pipeline.cli.options import data_format, data_option, default_of, format_option, write_format_option


def _synth(field: str) -> Any:
    """A `SynthConfig` default (its one home), for the help and the command."""
    return default_of(SynthConfig, field)


@click.group("data")
def data_group() -> None:
    """Make and add detection datasets."""


def _floats(value: str | None) -> tuple[float, ...] | None:
    if not value:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 4,1,1; got {value!r}") from None


@data_group.command("synth")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New dataset folder.")
@click.option("--images", "num_images", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=_synth("seed"), show_default=True, type=int, help="Same seed, same bytes.")
@write_format_option()
@click.option("--width", default=_synth("width"), show_default=True, type=click.IntRange(min=64))
@click.option("--height", default=_synth("height"), show_default=True, type=click.IntRange(min=64))
@click.option("--classes", help="Shapes to draw, from circle,square,triangle,cross. [default: the first three]")
@click.option("--class-weights", help="Relative frequency of each class, e.g. 4,1,1. [default: equal]")
@click.option(
    "--brightness",
    default=_synth("brightness"),
    show_default=True,
    type=click.FloatRange(0.05, 2.0),
    help="< 1 is darker.",
)
@click.option(
    "--first-id",
    default=_synth("first_id"),
    show_default=True,
    type=click.IntRange(min=1),
    help="Id of the first image.",
)
def synth_command(
    out_dir: str,
    num_images: int,
    seed: int,
    fmt: str,
    width: int,
    height: int,
    classes: str | None,
    class_weights: str | None,
    brightness: float,
    first_id: int,
) -> None:
    """Write a deterministic synthetic dataset of shapes (circle, square, triangle; optionally cross)."""
    from detx.components.data.synth import CLASSES, write_dataset

    names = tuple(c.strip() for c in classes.split(",")) if classes else CLASSES
    weights = _floats(class_weights) or (1.0,) * len(names)
    try:
        config = SynthConfig(
            num_images=num_images,
            seed=seed,
            width=width,
            height=height,
            max_size=min(_synth("max_size"), width, height),
            classes=names,
            class_weights=weights,
            brightness=brightness,
            first_id=first_id,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    step = max(1, num_images // 10)

    def progress(n: int) -> None:
        if n % step == 0 or n == num_images:
            click.echo(f"  {n}/{num_images} images", err=True)

    try:
        summary = write_dataset(out_dir, config, fmt, progress=progress)
    except (FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    per_class = ", ".join(f"{k} {v}" for k, v in summary.boxes_per_class.items())
    click.echo(
        f"Wrote {summary.num_images} images ({summary.num_empty} without objects) and {summary.num_boxes} boxes "
        f"({per_class}) as {fmt} to {summary.out_dir}"
    )


@data_group.command("add-span")
@click.argument("delivery", required=False, type=click.Path(exists=True, file_okay=False))
@data_option("The span root (span-1/, span-2/, ...); created if missing.")
# Before one name per idea, `--root` named the span root and `--data` the delivery; that form still works.
@click.option("--root", hidden=True)
@format_option()
@click.option("--span", type=click.IntRange(min=0), help="The span number. [default: the newest + 1]")
def add_span_command(
    delivery: str | None, data_path: str | None, root: str | None, fmt: str | None, span: int | None
) -> None:
    """Add the labelled dataset DELIVERY to a span root as its next span (checked first; appears all at once)."""
    from detx.components.data import spans as spans_lib
    from detx.components.data.ingest_options import IngestOptions
    from detx.components.data.scan import DatasetError
    from detx.components.data.sources import scan_source
    from detx.pipeline.project import absolute

    if root is not None:  # the old form: --root ROOT --data DELIVERY
        if delivery is not None:
            raise click.UsageError("give the delivery once: detx data add-span DELIVERY --data SPAN_ROOT")
        root, delivery = absolute(root), data_path
    else:
        root = data_path
    if not root or not delivery:
        raise click.UsageError("usage: detx data add-span DELIVERY --data SPAN_ROOT")
    options = IngestOptions(data_format=data_format(fmt), span_window=1)
    try:
        scan = scan_source(options, absolute(delivery), options.inner_pattern)
        existing = spans_lib.list_spans(root)
        known: tuple[str, ...] = ()
        if existing:
            newest = existing[-1]
            previous = scan_source(options, spans_lib.span_dir(root, newest), options.inner_pattern)
            known = previous.label_map.names
            # Fails now, not in the next pipeline run, if the spans cannot be read together.
            spans_lib.merge_scans([(newest, previous), (newest + 1, scan)])
        added = spans_lib.add_span(root, absolute(delivery), span)
    except DatasetError as e:
        raise click.ClickException(f"{e}\nNothing was added.") from e
    new_classes = [n for n in scan.label_map.names if known and n not in known]
    click.echo(
        f"Added span {added.span} to {root}: {scan.num_records} images, {len(scan.rejects)} rejected while reading "
        f"the annotations ({added.num_files} files copied); classes {', '.join(scan.label_map.names)}"
        + (f" (new: {', '.join(new_classes)})" if new_classes else "")
        + "".join(f"\n  {note}" for note in scan.notes)
    )
