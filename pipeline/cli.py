"""The `detx` command line."""

from __future__ import annotations

import os
import sys
import warnings

import click

# TensorFlow's C++ start-up messages (CUDA plugin registration, CPU features) are
# noise on a terminal and say nothing actionable; TF reads this at import time.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# google-cloud packages (imported by TFX) warn about their own future versions and
# Python 3.11's end of life on every import; nothing a detx user can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """detx: object detection MLOps on TFX, Kubeflow Pipelines and TensorFlow Serving."""


@main.group()
def data() -> None:
    """Make and inspect detection datasets."""


@data.command("synth")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New dataset folder.")
@click.option("--images", "num_images", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--format", "fmt", default="coco", show_default=True, type=click.Choice(["coco", "voc", "tfrecord"]))
@click.option("--width", default=640, show_default=True, type=click.IntRange(min=64))
@click.option("--height", default=480, show_default=True, type=click.IntRange(min=64))
def synth(out_dir: str, num_images: int, seed: int, fmt: str, width: int, height: int) -> None:
    """Write a deterministic synthetic dataset of shapes (circle, square, triangle)."""
    from components.data.synth import SynthConfig, write_dataset

    max_size = min(160, width, height)
    config = SynthConfig(num_images=num_images, seed=seed, width=width, height=height, max_size=max_size)
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


def _parse_splits(value: str) -> dict[str, int]:
    splits: dict[str, int] = {}
    for part in value.split(","):
        name, _, buckets = part.partition("=")
        if not name or not buckets.isdigit() or int(buckets) <= 0:
            raise click.BadParameter(f"expected name=buckets[,name=buckets...], e.g. train=4,eval=1; got {value!r}")
        splits[name.strip()] = int(buckets)
    return splits


@main.command("run")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", default="coco", show_default=True, type=click.Choice(["coco", "voc", "tfrecord"]))
@click.option("--project", "project_dir", default=".detx/project", show_default=True, type=click.Path(file_okay=False))
@click.option("--until", "until", default="validation", show_default=True, help="Last stage to run.")
@click.option("--name", default="detx", show_default=True, help="Pipeline name (ML Metadata context).")
@click.option("--split", "split_spec", default="train=4,eval=1", show_default=True, help="Hash buckets per split.")
@click.option("--pattern", default=None, help="Annotation files relative to --data (default: the format's).")
@click.option("--image-dir", default="", help="Image folder relative to --data (default: the format's).")
@click.option("--max-rejected-fraction", default=0.01, show_default=True, type=click.FloatRange(0, 1))
@click.option("--max-pixels", default=40_000_000, show_default=True, type=click.IntRange(min=1))
@click.option("--schema", "schema_file", default="", help="Schema template replacing detx's own.")
@click.option("--preset", default="zoo320", show_default=True, type=click.Choice(["zoo320", "tiny"]))
@click.option("--train-steps", default=50_000, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=0, type=click.IntRange(min=0), help="Overrides the preset's batch size.")
@click.option("--pretrained", default="", help="Model Zoo model dir or ImageNet MobileNetV2 .h5 weights.")
@click.option(
    "--restore-scope",
    default="detection",
    show_default=True,
    type=click.Choice(["detection", "detection+box", "full"]),
    help="What a Model Zoo checkpoint restores.",
)
@click.option("--freeze-batchnorm", is_flag=True, help="Keep batch norm fixed (small batches).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--no-cache", is_flag=True, help="Run every component even if its inputs did not change.")
@click.option("-v", "--verbose", is_flag=True, help="Print TFX's and Beam's logs too.")
def run(
    data_path: str,
    fmt: str,
    project_dir: str,
    until: str,
    name: str,
    split_spec: str,
    pattern: str | None,
    image_dir: str,
    max_rejected_fraction: float,
    max_pixels: int,
    schema_file: str,
    preset: str,
    train_steps: int,
    batch_size: int,
    pretrained: str,
    restore_scope: str,
    freeze_batchnorm: bool,
    seed: int,
    no_cache: bool,
    verbose: bool,
) -> None:
    """Run the pipeline locally (LocalDagRunner, Beam DirectRunner, SQLite ML Metadata)."""
    from components.trainer.options import TrainerOptions
    from pipeline.config import DataConfig, PipelineConfig, Stage

    try:
        stage = Stage.parse(until)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--until") from e
    config = PipelineConfig(
        data=DataConfig(
            path=os.path.abspath(data_path),
            format=fmt,
            pattern=pattern,
            image_dir=image_dir,
            splits=_parse_splits(split_spec),
            max_rejected_fraction=max_rejected_fraction,
            max_pixels=max_pixels,
        ),
        name=name,
        schema_file=schema_file,
        stop_after=stage,
        enable_cache=not no_cache,
        trainer=TrainerOptions(
            preset=preset,
            batch_size=batch_size,
            freeze_batchnorm=freeze_batchnorm,
            seed=seed,
            pretrained=os.path.abspath(pretrained) if pretrained else "",
            restore_scope=restore_scope,
        ),
        train_steps=train_steps,
    )
    click.echo(f"detx run: {config.data.path} ({fmt}) until {stage.value}; project {os.path.abspath(project_dir)}")
    from pipeline.local_runner import PipelineRunFailed, ProjectPaths, run_local
    from pipeline.run_report import format_summary, latest_run

    try:
        log_path = run_local(config, project_dir, echo=click.echo, verbose=verbose)
    except PipelineRunFailed as e:
        click.echo(f"\nThe run stopped at {e.node or 'start-up'}:\n{e.cause}\n\nFull log: {e.log_path}", err=True)
        sys.exit(1)
    paths = ProjectPaths(os.path.abspath(project_dir))
    click.echo("")
    click.echo(format_summary(latest_run(paths.metadata_path, config.name)))
    click.echo(f"Artifacts: {paths.pipeline_root}\nML Metadata: {paths.metadata_path}\nFull log: {log_path}")


if __name__ == "__main__":
    main()
