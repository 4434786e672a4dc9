"""COCO mAP of an exported detector on OD API tf.Examples, computed by pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Iterable
from typing import Any

import numpy as np
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detx.components.data import features as F
from detx.components.data.decode import OBJECT_FEATURES, objects

# Image size and objects of an OD API tf.Example (what COCO scoring needs).
PARSE_SPEC = {
    F.HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    F.WIDTH: tf.io.FixedLenFeature([], tf.int64),
    **OBJECT_FEATURES,
}


@dataclasses.dataclass(frozen=True)
class CocoMetrics:
    """COCOeval's summary numbers (bbox), plus per-class AP at [.5:.95].

    Attributes:
        map: AP at IoU .50:.95.
        map_50: AP at IoU .50.
        map_75: AP at IoU .75.
        ar_100: AR with 100 detections per image.
        ap_per_class: label id to AP at .50:.95.
        num_images: images evaluated.
        precision: COCOeval's interpolated precision, [IoU threshold (.50:.05:.95),
            recall (0:.01:1), class, area range (all, small, medium, large),
            max detections (1, 10, 100)], -1 where undefined; None without detections.
    """

    map: float
    map_50: float
    map_75: float
    ar_100: float
    ap_per_class: dict[int, float]
    num_images: int
    precision: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    def ap_per_iou(self) -> dict[float, float]:
        """AP (all classes, all areas, 100 detections) at each IoU threshold .50, .55, ... .95."""
        if self.precision is None:
            return {round(0.5 + 0.05 * t, 2): 0.0 for t in range(10)}
        out = {}
        for t in range(self.precision.shape[0]):
            p = self.precision[t, :, :, 0, -1]
            out[round(0.5 + 0.05 * t, 2)] = float(np.mean(p[p > -1])) if (p > -1).any() else 0.0
        return out

    def pr_curve(self, class_index: int, iou_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) of one class (0-based index) at one IoU threshold (0 = .50)."""
        recall = np.linspace(0.0, 1.0, 101)
        if self.precision is None:
            return recall, np.zeros_like(recall)
        precision = self.precision[iou_index, :, class_index, 0, -1]
        return recall, np.where(precision < 0, 0.0, precision)


def serving_default_predictor(signature: Any) -> Any:
    """Adapts the Zoo-style `serving_default` (uint8 image tensors) to `evaluate`'s serialized examples.

    Images are sent one by one, since a batch tensor needs one image size.
    """

    def predict(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        encoded = tf.io.parse_example(examples, {F.ENCODED: tf.io.FixedLenFeature([], tf.string)})[F.ENCODED]
        outputs = [signature(input_tensor=tf.io.decode_image(e, channels=3)[None]) for e in encoded]
        return {k: tf.concat([o[k] for o in outputs], axis=0) for k in outputs[0]}

    return predict


def read_examples(pattern: str) -> list[bytes]:
    """The serialized examples of an ExampleGen split (GZIP TFRecords)."""
    files = sorted(tf.io.gfile.glob(pattern))
    return [bytes(r) for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()]


def _to_xywh_pixels(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalized [ymin, xmin, ymax, xmax] to COCO's pixel [x, y, w, h]."""
    ymin, xmin, ymax, xmax = (boxes[:, i] for i in range(4))
    return np.stack([xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height], axis=1)


def evaluate(
    predict: Any,
    serialized_examples: Iterable[bytes],
    num_classes: int,
    batch_size: int = 8,
) -> CocoMetrics:
    """Runs `predict` over the examples and scores the detections with COCOeval.

    Args:
        predict: called with a [B] string tensor of serialized tf.Examples,
            returns the detection dict (the exported `tf_example` signature or
            `serving_default` behind an adapter).
        serialized_examples: the evaluation split.
        num_classes: K, for per-class AP.
        batch_size: examples per call.
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[list[float]] = []
    batch: list[bytes] = []

    def flush() -> None:
        if not batch:
            return
        out = {k: v.numpy() for k, v in predict(tf.constant(batch)).items()}
        for i, raw in enumerate(batch):
            f = tf.io.parse_single_example(raw, PARSE_SPEC)
            w, h = float(f[F.WIDTH]), float(f[F.HEIGHT])
            image_id = len(images) + 1
            images.append({"id": image_id, "width": w, "height": h})
            gt, labels, crowd = (t.numpy() for t in objects(f))
            for box, label, is_crowd in zip(_to_xywh_pixels(gt, w, h), labels, crowd, strict=True):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": int(label),
                        "bbox": box.tolist(),
                        "area": float(box[2] * box[3]),
                        "iscrowd": int(is_crowd),
                    }
                )
            n = int(out["num_detections"][i])
            boxes = _to_xywh_pixels(out["detection_boxes"][i, :n], w, h)
            for box, score, cls in zip(
                boxes, out["detection_scores"][i, :n], out["detection_classes"][i, :n], strict=True
            ):
                detections.append([image_id, *box.tolist(), float(score), int(cls)])
        batch.clear()

    for raw in serialized_examples:
        batch.append(raw)
        if len(batch) == batch_size:
            flush()
    flush()
    return coco_eval(images, annotations, detections, num_classes)


def coco_eval(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], detections: list[list[float]], num_classes: int
) -> CocoMetrics:
    """COCOeval (bbox) over in-memory ground truth and [image_id, x, y, w, h, score, class] detections."""
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i} for i in range(1, num_classes + 1)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(np.asarray(detections, dtype=np.float64)) if detections else COCO()
        if not detections:
            return CocoMetrics(0.0, 0.0, 0.0, 0.0, {i: 0.0 for i in range(1, num_classes + 1)}, len(images))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_class[int(cat)] = float(np.mean(p[p > -1])) if (p > -1).any() else 0.0
    s = ev.stats
    return CocoMetrics(float(s[0]), float(s[1]), float(s[2]), float(s[8]), per_class, len(images), precision)
