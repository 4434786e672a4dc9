"""`detx review`: pre-labels for CVAT and Label Studio, and the queue of images most worth a person's time."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from detx.pipeline.cli.options import data_option, format_option, min_score_option

if TYPE_CHECKING:
    from detx.components.batch_inference.records import ImagePrediction
    from detx.components.review.predictions import PredictionSet

QUEUE_FILENAME = "queue.jsonl"
LEFT_OUT_FILENAME = "left_out.jsonl"


@click.group("review")
def review_group() -> None:
    """Turn detx infer's predictions into labelling work: pre-labels and a review queue."""


def _common(fn: Any) -> Any:
    for decorator in reversed(
        (
            click.option(
                "--predictions",
                "predictions_dir",
                required=True,
                type=click.Path(file_okay=False),
                help="The --out folder of detx infer (predictions-*.jsonl).",
            ),
            click.option(
                "--images",
                "images_root",
                type=click.Path(exists=True, file_okay=False),
                help="The folder detx infer read (prediction files are relative to it). "
                "[default: the one its summary.json names]",
            ),
            click.option("--out", "out_dir", required=True, type=click.Path(), help="New folder for the files."),
            min_score_option,
            click.option(
                "--url-prefix",
                default="",
                help="Address of the images root for the tools, e.g. https://bucket/images/. "
                "[default: Label Studio's local files under --images; file:// in COCO's coco_url]",
            ),
            click.option(
                "--model-version", default="detx", show_default=True, help="Label Studio's model_version field."
            ),
        )
    ):
        fn = decorator(fn)
    return fn


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(f"{e}\nNothing was written.")


def _images_root(given: str | None, loaded: PredictionSet) -> str:
    """--images, else the folder the detx infer run read (its summary.json)."""
    from detx.components.review.predictions import ReviewError

    root = given or loaded.input_root
    if not root:
        raise ReviewError(f"{loaded.directory} does not name the images it scored (no summary.json); give --images")
    if not os.path.isdir(root):
        raise ReviewError(f"the images folder {root} (from {loaded.directory}/summary.json) is gone; give --images")
    return root


def _project(
    chosen: Sequence[ImagePrediction],
    loaded: PredictionSet,
    images_root: str,
    url_prefix: str,
    min_score: float,
    model_version: str,
    extra_classes: Sequence[str] = (),
) -> dict[str, str]:
    from detx.components.review import output, projects

    source = projects.ImageSource(os.path.abspath(images_root), url_prefix)
    # Every class the model knows (not only the chosen images'), so reviewers can add any of them.
    classes = projects.categories(loaded.images, loaded.classes, extra_classes)
    return output.project_files(
        projects.coco_document(chosen, source, min_score, classes),
        projects.label_studio_tasks(chosen, source, min_score, model_version),
        projects.label_studio_config([name for _, name in classes]),
    )


def _boxes(predictions: Sequence[ImagePrediction], min_score: float) -> int:
    return sum(1 for p in predictions for d in p.detections if d.score >= min_score)


@review_group.command("prelabel")
@_common
def prelabel_command(
    predictions_dir: str, images_root: str | None, out_dir: str, min_score: float, url_prefix: str, model_version: str
) -> None:
    """Write the detections at --min-score or more as a CVAT COCO file and Label Studio tasks."""
    from detx.components.review import output
    from detx.components.review.predictions import ReviewError, load_predictions

    try:
        output.check_out_dir(out_dir)
        loaded = load_predictions(predictions_dir)
        root = _images_root(images_root, loaded)
        files = _project(loaded.images, loaded, root, url_prefix, min_score, model_version)
        written = output.write_folder(out_dir, files)
    except (ReviewError, ValueError) as e:
        raise _fail(e) from e
    click.echo(
        f"Pre-labels: {len(loaded.images)} images, {_boxes(loaded.images, min_score)} boxes at {min_score} or more "
        f"({len(loaded.skipped)} images detx infer skipped are not included) -> "
        + ", ".join(os.path.basename(w) for w in written)
        + f" in {out_dir}"
    )


@review_group.command("queue")
@_common
@click.option(
    "-k", "--top", "k", required=True, type=click.IntRange(min=1), metavar="K", help="How many images to queue."
)
@click.option(
    "--compare",
    "compare_dir",
    type=click.Path(file_okay=False),
    help="A candidate model's detx infer --out folder on the same images: rank by disagreement too.",
)
@data_option("The labelled data (dataset or span root): rare classes, and near-duplicates left out.")
@format_option()
def queue_command(
    predictions_dir: str,
    images_root: str | None,
    out_dir: str,
    min_score: float,
    url_prefix: str,
    model_version: str,
    k: int,
    compare_dir: str | None,
    data_path: str | None,
    fmt: str | None,
) -> None:
    """Queue the K images most worth reviewing, with reasons, as a list and as importable files."""
    from detx.components.review import output
    from detx.components.review.labelled import read_labelled
    from detx.components.review.predictions import ReviewError, load_predictions
    from detx.components.review.queue import build_queue, table
    from detx.pipeline.cli.options import data_format

    def progress(done: int, total: int) -> None:
        click.echo(f"  hashed {done}/{total} labelled images", err=True)

    try:
        output.check_out_dir(out_dir)
        loaded = load_predictions(predictions_dir)
        root = _images_root(images_root, loaded)
        candidate = load_predictions(compare_dir).by_file() if compare_dir else None
        labelled = read_labelled(data_path, data_format(fmt), progress) if data_path else None
        queue = build_queue(
            loaded.images,
            k,
            min_score,
            root,
            candidate,
            labelled,
            lambda n: click.echo(f"  checked {n} ranked images for near-duplicates", err=True),
        )
        chosen = [item.prediction for item in queue.items]
        files = _project(
            chosen,
            loaded,
            root,
            url_prefix,
            min_score,
            model_version,
            tuple(labelled.boxes_per_class) if labelled else (),
        )
        files[QUEUE_FILENAME] = "".join(item.to_json(rank) + "\n" for rank, item in enumerate(queue.items, 1))
        left_out = [json.dumps(dataclasses.asdict(d) | {"reason": "near_duplicate"}) for d in queue.near_duplicates]
        left_out += [json.dumps({"file": f, "reason": "unreadable"}) for f in queue.unreadable]
        files[LEFT_OUT_FILENAME] = "".join(line + "\n" for line in left_out)
        output.write_folder(out_dir, files)
    except (ReviewError, ValueError) as e:
        raise _fail(e) from e
    click.echo(table(queue))
    missing = len(set(p.file for p in loaded.images) - set(candidate)) if candidate is not None else 0
    click.echo(
        f"Queued {len(queue.items)} of {queue.considered} images"
        + (f" ({missing} not in --compare)" if missing else "")
        + f"; left out {len(queue.near_duplicates)} near-duplicates of labelled images"
        + (f" and {len(queue.unreadable)} unreadable images" if queue.unreadable else "")
        + (f" (labelled: {labelled.num_boxes} boxes, {len(labelled.hashes)} images hashed)" if labelled else "")
        + f" -> {out_dir} ({QUEUE_FILENAME}, {LEFT_OUT_FILENAME} and the CVAT and Label Studio files)"
    )


COMMANDS = [review_group]
