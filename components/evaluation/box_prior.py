"""The simplest detector worth beating: the train split's most frequent boxes per class, whatever the image.

The ML Test Score asks that a simpler model is not better than the one
shipped. For detection the analogue of "predict the majority class" is a
detector that never looks at the pixels: it answers every image with the same
boxes, the places and sizes where each class's objects most often are in the
training data, scored by how often. It costs one pass over the train split's
boxes (images are not decoded) and one cheap inference per eval image.

A detector that collapsed to this prior (images fed wrongly at export, a
network that ignores its input) can still clear an absolute mAP floor on data
whose objects sit in the same places; a margin over the prior cannot.

Worked example: with `grid=4` and `size_bins=4`, a 0.2 x 0.3 circle centred at
(0.4, 0.6) falls in cell (row 1, column 2) and size bin by log-area; every
circle in that cell and bin is averaged into one prior box, scored by the
share of all training boxes it stands for.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from detx.components.data import features as F

MAX_DETECTIONS = 100
_BOX_SPEC = {key: tf.io.VarLenFeature(tf.float32) for key in (F.YMIN, F.XMIN, F.YMAX, F.XMAX)}
_LABEL_SPEC = {F.LABEL: tf.io.VarLenFeature(tf.int64)}


@dataclasses.dataclass(frozen=True)
class BoxPrior:
    """Fixed detections: the same for every image.

    Attributes:
        boxes: [N, 4] normalized [ymin, xmin, ymax, xmax].
        classes: [N] label ids.
        scores: [N] share of the training boxes each prior box stands for, descending.
        num_boxes: training boxes it was fitted on.
    """

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    num_boxes: int


def fit(
    boxes_and_labels: Iterable[tuple[np.ndarray, np.ndarray]],
    grid: int = 4,
    size_bins: int = 4,
    max_boxes: int = MAX_DETECTIONS,
) -> BoxPrior:
    """Fits the prior: per class, boxes grouped by centre cell and log-area bin, the most frequent groups kept.

    Args:
        boxes_and_labels: per training image, [G, 4] normalized boxes and [G] label ids.
        grid: centre cells per side.
        size_bins: log-area bins over (0, 1].
        max_boxes: prior boxes kept (COCO scores 100 detections per image).

    Raises:
        ValueError: no training box at all (nothing to fit).
    """
    groups: dict[tuple[int, int, int, int], list[np.ndarray]] = defaultdict(list)
    total = 0
    for boxes, labels in boxes_and_labels:
        if len(labels) == 0:
            continue
        cy = (boxes[:, 0] + boxes[:, 2]) / 2
        cx = (boxes[:, 1] + boxes[:, 3]) / 2
        area = np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6, 1.0)
        # Bins of equal width in log-area from 1e-6 (a 1 px box of a 1000 px image) to the whole image.
        size = np.minimum((np.log(area) / np.log(1e-6) * size_bins).astype(int), size_bins - 1)
        row = np.clip((cy * grid).astype(int), 0, grid - 1)
        col = np.clip((cx * grid).astype(int), 0, grid - 1)
        for i in range(len(labels)):
            groups[int(labels[i]), int(row[i]), int(col[i]), int(size[i])].append(boxes[i])
        total += len(labels)
    if total == 0:
        raise ValueError(
            "the train split has no boxes: the box prior has nothing to fit; set evaluator.simpler_reference to 'none'"
        )
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))[:max_boxes]
    return BoxPrior(
        boxes=np.stack([np.mean(members, axis=0) for _, members in ranked]).astype(np.float32),
        classes=np.array([key[0] for key, _ in ranked], dtype=np.int64),
        scores=np.array([len(members) / total for _, members in ranked], dtype=np.float32),
        num_boxes=total,
    )


def read_boxes(file_pattern: str) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Per example of ExampleGen's GZIP TFRecords, its [G, 4] boxes and [G] labels (images are not decoded)."""
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise ValueError(f"no examples match {file_pattern}")

    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        f = tf.io.parse_single_example(serialized, {**_BOX_SPEC, **_LABEL_SPEC})
        boxes = tf.stack([tf.sparse.to_dense(f[k]) for k in (F.YMIN, F.XMIN, F.YMAX, F.XMAX)], axis=1)
        return boxes, tf.sparse.to_dense(f[F.LABEL])

    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    yield from dataset.as_numpy_iterator()


class _PriorDetector(tf.Module):
    """The prior as a SavedModel with detx's `tf_example` signature and the Model Zoo's outputs."""

    def __init__(self, prior: BoxPrior) -> None:
        super().__init__(name="box_prior")
        n = len(prior.scores)
        pad = MAX_DETECTIONS - n
        self._boxes = tf.constant(np.pad(prior.boxes, [[0, pad], [0, 0]]), tf.float32)
        self._scores = tf.constant(np.pad(prior.scores, [0, pad]), tf.float32)
        self._classes = tf.constant(np.pad(prior.classes, [0, pad]).astype(np.float32), tf.float32)
        self._count = tf.constant(float(n), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def detect_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """The same detections for every serialized tf.Example."""
        batch = tf.shape(examples)[0]

        def tile(t: tf.Tensor) -> tf.Tensor:
            return tf.tile(t[None], tf.concat([[batch], tf.ones([tf.rank(t)], tf.int32)], axis=0))

        return {
            "detection_boxes": tile(self._boxes),
            "detection_scores": tile(self._scores),
            "detection_classes": tile(self._classes),
            "num_detections": tf.fill([batch], self._count),
        }


def write_model(prior: BoxPrior, export_dir: str) -> str:
    """Saves the prior as a SavedModel with the `tf_example` signature (TFMA scores it like the candidate)."""
    module = _PriorDetector(prior)
    tf.saved_model.save(module, export_dir, signatures={"tf_example": module.detect_examples.get_concrete_function()})
    return export_dir
