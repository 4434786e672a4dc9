"""What the notebooks show, as functions: the latest run's artifacts, data tables and plots, model analysis.

The notebooks in notebooks/ stay short and readable by calling these; the
functions read the project's ML Metadata (the latest run of a pipeline), the
artifacts it points to, and draw with matplotlib.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
from typing import Any

import numpy as np

from detx.components.data import features as F
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.evaluation.coco_metrics import (
    PARSE_SPEC,
    CocoMetrics,
    evaluate,
    read_examples,
    serving_default_predictor,
)
from detx.components.evaluator.report import EvaluationReport
from detx.pipeline.project import ProjectPaths
from detx.pipeline.run_report import latest_run


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
    """The artifact folders of a pipeline's latest run, by component and output key."""

    project: str
    pipeline: str
    uris: dict[str, dict[str, str]]

    def uri(self, node: str, key: str) -> str:
        """One artifact folder; says which run lacks it when it is missing."""
        try:
            return self.uris[node][key]
        except KeyError:
            raise LookupError(
                f"the latest {self.pipeline!r} run in {self.project} has no {node}.{key}; "
                f"it ran {sorted(self.uris)} (run `detx run` to the stage that makes it)"
            ) from None

    @property
    def examples(self) -> str:
        """ExampleGen's examples folder (splits, label map, ingest report)."""
        return self.uri("DetectionExampleGen", "examples")

    def label_names(self) -> dict[int, str]:
        """Class id -> name, from the label map ExampleGen wrote."""
        return dict(LabelMap.read(os.path.join(self.examples, LABEL_MAP_FILENAME)).items())


def latest_artifacts(project_dir: str, pipeline: str = "detx") -> RunArtifacts:
    """The latest run's artifacts (cached components point at the artifacts they reused)."""
    paths = ProjectPaths(project_dir)
    if not os.path.exists(paths.metadata_path):
        raise FileNotFoundError(
            f"no ML Metadata at {paths.metadata_path}: run `detx run --project {project_dir}` first"
        )
    runs = latest_run(paths.metadata_path, pipeline)
    uris = {r.node: {k: v[0] for k, v in r.outputs.items() if v} for r in runs}
    return RunArtifacts(paths.project_dir, pipeline, uris)


def statistics(run: RunArtifacts, split: str = "train") -> Any:
    """TFDV statistics of one split (a DatasetFeatureStatisticsList)."""
    import tensorflow_data_validation as tfdv

    return tfdv.load_stats_binary(
        os.path.join(run.uri("StatisticsGen", "statistics"), f"Split-{split}", "FeatureStats.pb")
    )


def anomalies(run: RunArtifacts, split: str = "train") -> Any:
    """ExampleValidator's anomalies of one split (a tensorflow_metadata Anomalies)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    path = os.path.join(run.uri("ExampleValidator", "anomalies"), f"Split-{split}", "SchemaDiff.pb")
    with tf.io.gfile.GFile(path, "rb") as f:
        return anomalies_pb2.Anomalies.FromString(f.read())


def schema(run: RunArtifacts) -> Any:
    """The curated schema the run validated against."""
    import tensorflow_data_validation as tfdv

    return tfdv.load_schema_text(os.path.join(run.uri("DetectionSchemaGen", "schema"), "schema.pbtxt"))


def _records(run: RunArtifacts, split: str) -> list[bytes]:
    return read_examples(os.path.join(run.examples, f"Split-{split}", "*"))


def box_table(run: RunArtifacts, split: str = "train") -> Any:
    """One row per box (pandas): image, class, size in pixels; images without boxes get a row with class 0."""
    import pandas as pd
    import tensorflow as tf

    from detx.components.data.decode import objects

    names = run.label_names()
    rows = []
    for index, raw in enumerate(_records(run, split)):
        parsed = tf.io.parse_single_example(raw, PARSE_SPEC)
        width, height = int(parsed[F.WIDTH]), int(parsed[F.HEIGHT])
        boxes, labels, _ = (t.numpy() for t in objects(parsed))
        if len(labels) == 0:
            rows.append({"image": index, "class_id": 0, "label": "(none)", "width_px": 0.0, "height_px": 0.0})
        for (ymin, xmin, ymax, xmax), label in zip(boxes, labels, strict=True):
            rows.append(
                {
                    "image": index,
                    "class_id": int(label),
                    "label": names.get(int(label), f"class_{label}"),
                    "width_px": float((xmax - xmin) * width),
                    "height_px": float((ymax - ymin) * height),
                }
            )
    table = pd.DataFrame(rows)
    table["area_px"] = table["width_px"] * table["height_px"]
    table["aspect"] = np.where(
        table["height_px"] > 0, table["width_px"] / table["height_px"].where(table["height_px"] > 0, 1), 0.0
    )
    return table


def plot_data(table: Any) -> Any:
    """Three panels: boxes per image, box sizes (width vs height), and class balance."""
    import matplotlib.pyplot as plt

    boxes = table[table["class_id"] > 0]
    per_image = boxes.groupby("image").size().reindex(table["image"].unique(), fill_value=0)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].hist(per_image.values, bins=range(int(per_image.max()) + 2), align="left", rwidth=0.8)
    axes[0].set(title="Boxes per image", xlabel="boxes", ylabel="images")
    for label, group in boxes.groupby("label"):
        axes[1].scatter(group["width_px"], group["height_px"], s=8, alpha=0.6, label=label)
    axes[1].set(title="Box sizes", xlabel="width (px)", ylabel="height (px)")
    axes[1].legend()
    counts = boxes["label"].value_counts().sort_index()
    axes[2].bar(counts.index, counts.values)
    axes[2].set(title="Class balance", ylabel="boxes")
    fig.tight_layout()
    return fig


def example_grid(run: RunArtifacts, split: str = "train", count: int = 8, columns: int = 4) -> Any:
    """A grid of the split's first images with their labelled boxes drawn."""
    import matplotlib.pyplot as plt
    import tensorflow as tf
    from matplotlib import patches
    from PIL import Image

    from detx.components.data.decode import OBJECT_FEATURES, objects

    names = run.label_names()
    spec = {F.ENCODED: tf.io.FixedLenFeature([], tf.string), **OBJECT_FEATURES}
    records = _records(run, split)[:count]
    rows = max(1, (len(records) + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, raw in zip(axes.flat, records, strict=False):
        parsed = tf.io.parse_single_example(raw, spec)
        image = np.asarray(Image.open(io.BytesIO(parsed[F.ENCODED].numpy())).convert("RGB"))
        height, width = image.shape[:2]
        ax.imshow(image)
        boxes, labels, _ = (t.numpy() for t in objects(parsed))
        for (ymin, xmin, ymax, xmax), label in zip(boxes, labels, strict=True):
            ax.add_patch(
                patches.Rectangle(
                    (xmin * width, ymin * height),
                    (xmax - xmin) * width,
                    (ymax - ymin) * height,
                    fill=False,
                    color="yellow",
                )
            )
            ax.text(
                xmin * width,
                ymin * height,
                names.get(int(label), str(label)),
                color="black",
                backgroundcolor="yellow",
                fontsize=7,
            )
    fig.tight_layout()
    return fig


def evaluation_report(run: RunArtifacts) -> EvaluationReport:
    """The Evaluator's verdict: metrics, baseline, blessed or not and why."""
    return EvaluationReport.read(run.uri("DetectionEvaluator", "blessing"))


def tfma_result(run: RunArtifacts) -> Any:
    """TFMA's EvalResult of the run (`tfma.view.render_slicing_metrics` can show it)."""
    import tensorflow_model_analysis as tfma

    return tfma.load_eval_result(run.uri("DetectionEvaluator", "evaluation"))


def slice_table(result: Any) -> Any:
    """One row per slice (pandas) with the COCO metrics TFMA computed for it."""
    import pandas as pd

    rows = []
    for slice_key, metrics in result.slicing_metrics:
        name = ", ".join(f"{k}={v}" for k, v in slice_key) or "overall"
        values = next(iter(next(iter(metrics.values())).values()))
        row: dict[str, Any] = {"slice": name}
        for key, value in values.items():
            number = value.get("doubleValue") if isinstance(value, dict) else value
            if isinstance(number, (int, float)):
                row[key] = float(number)
        rows.append(row)
    return pd.DataFrame(rows).set_index("slice")


def coco_details(model_dir: str, run: RunArtifacts, split: str = "eval") -> CocoMetrics:
    """Pycocotools' COCOeval of a SavedModel on the run's split, with its precision array (curves, AP per IoU)."""
    import tensorflow as tf

    serving = model_dir
    if os.path.isdir(os.path.join(model_dir, "Format-Serving")):
        serving = os.path.join(model_dir, "Format-Serving")
    model = tf.saved_model.load(serving)
    predict = serving_default_predictor(model.signatures["serving_default"])
    return evaluate(predict, _records(run, split), num_classes=len(run.label_names()))


def candidate_model(run: RunArtifacts) -> str:
    """The run's trained model folder."""
    return run.uri("Trainer", "model")


def plot_model_analysis(candidate: CocoMetrics, names: dict[int, str], baseline: CocoMetrics | None = None) -> Any:
    """AP over IoU thresholds (candidate vs baseline), AP per class, and precision-recall curves at IoU .5."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for label, metrics in (("candidate", candidate), ("baseline (production)", baseline)):
        if metrics is not None:
            per_iou = metrics.ap_per_iou()
            axes[0].plot(list(per_iou), list(per_iou.values()), marker="o", label=label)
    axes[0].set(title="AP over IoU thresholds", xlabel="IoU threshold", ylabel="AP", ylim=(0, 1))
    axes[0].legend()
    ids = sorted(names)
    width = 0.4
    axes[1].bar(
        [i - width / 2 for i in range(len(ids))],
        [candidate.ap_per_class.get(c, 0.0) for c in ids],
        width,
        label="candidate",
    )
    if baseline is not None:
        axes[1].bar(
            [i + width / 2 for i in range(len(ids))],
            [baseline.ap_per_class.get(c, 0.0) for c in ids],
            width,
            label="baseline",
        )
    axes[1].set_xticks(range(len(ids)), [names[c] for c in ids])
    axes[1].set(title="AP per class (IoU .50:.95)", ylim=(0, 1))
    axes[1].legend()
    for index, class_id in enumerate(ids):
        recall, precision = candidate.pr_curve(index)
        axes[2].plot(recall, precision, label=names[class_id])
    axes[2].set(
        title="Precision-recall at IoU .50 (candidate)",
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes[2].legend()
    fig.tight_layout()
    return fig


def pushed_versions(run: RunArtifacts) -> list[str]:
    """Version folders in the project's default push destination."""
    destination = ProjectPaths(run.project).push_destination(run.pipeline)
    return sorted(glob.glob(os.path.join(destination, "[0-9]*")))
