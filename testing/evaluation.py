"""Detectors of known quality for tests: SavedModels that answer from the ground truth in each tf.Example.

A trained model's mAP is whatever training gives; an evaluator or a blessing
rule is tested better against models whose quality is set: the perfect one
(mAP 1.0), one with jittered boxes and random scores, one with boxes dropped.
They are real SavedModels with detx's `tf_example` signature (the one TFMA
uses) and Zoo-format outputs, so the Evaluator, TFMA and the Pusher handle
them exactly like a trained detector.
"""

from __future__ import annotations

import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.decode import OBJECT_FEATURES, objects

MAX_DETECTIONS = 100


class OracleDetector(tf.Module):
    """Detections derived from each example's own boxes, deterministically per image.

    Args:
        jitter: each box coordinate moves by up to this much (normalized units).
        keep: fraction of boxes detected (the rest are missed), by a per-box draw.
        false_positives: random extra boxes per image.
        num_classes: label ids of the random extra boxes are 1..num_classes.
        blind_class: a label id never detected (0: none), a constructed bad class.
        blind_below: boxes under this area in pixels are never detected (0: none), e.g.
            32**2 for a detector blind to COCO's small objects.
    """

    def __init__(
        self,
        jitter: float = 0.0,
        keep: float = 1.0,
        false_positives: int = 0,
        num_classes: int = 3,
        blind_class: int = 0,
        blind_below: float = 0.0,
    ) -> None:
        super().__init__(name="oracle_detector")
        self.jitter = jitter
        self.keep = keep
        self.false_positives = false_positives
        self.num_classes = num_classes
        self.blind_class = blind_class
        self.blind_below = blind_below

    def _one(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        f = tf.io.parse_single_example(
            serialized,
            {
                F.SOURCE_ID: tf.io.FixedLenFeature([], tf.string),
                F.HEIGHT: tf.io.FixedLenFeature([], tf.int64),
                F.WIDTH: tf.io.FixedLenFeature([], tf.int64),
                **OBJECT_FEATURES,
            },
        )
        boxes, labels, _ = objects(f)
        pixels = tf.cast(f[F.HEIGHT] * f[F.WIDTH], tf.float32)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) * pixels
        seen = (labels != self.blind_class) & (area >= self.blind_below)
        boxes, labels = tf.boolean_mask(boxes, seen), tf.boolean_mask(labels, seen)
        classes = tf.cast(labels, tf.float32)
        n = tf.shape(boxes)[0]
        seed = tf.stack([tf.strings.to_hash_bucket_fast(f[F.SOURCE_ID], 2**31 - 1), tf.constant(7, tf.int64)])
        boxes += tf.random.stateless_uniform([n, 4], seed, -self.jitter, self.jitter)
        scores = tf.random.stateless_uniform([n], seed + 1, 0.3, 1.0)
        kept = tf.random.stateless_uniform([n], seed + 2) < self.keep
        boxes, classes, scores = (tf.boolean_mask(t, kept) for t in (boxes, classes, scores))
        k = self.false_positives
        corner = tf.random.stateless_uniform([k, 2], seed + 3, 0.0, 0.7)
        size = tf.random.stateless_uniform([k, 2], seed + 4, 0.05, 0.3)
        boxes = tf.concat([boxes, tf.concat([corner, corner + size], axis=1)], axis=0)
        fp_classes = tf.random.stateless_uniform([k], seed + 5, 1, self.num_classes + 1, dtype=tf.int64)
        classes = tf.concat([classes, tf.cast(fp_classes, tf.float32)], axis=0)
        scores = tf.concat([scores, tf.random.stateless_uniform([k], seed + 6, 0.0, 0.9)], axis=0)
        boxes = tf.clip_by_value(boxes, 0.0, 1.0)
        order = tf.argsort(scores, direction="DESCENDING")[:MAX_DETECTIONS]
        boxes, classes, scores = (tf.gather(t, order) for t in (boxes, classes, scores))
        count = tf.shape(scores)[0]
        pad = MAX_DETECTIONS - count
        return {
            "detection_boxes": tf.pad(boxes, [[0, pad], [0, 0]]),
            "detection_scores": tf.pad(scores, [[0, pad]]),
            "detection_classes": tf.pad(classes, [[0, pad]]),
            "num_detections": tf.cast(count, tf.float32),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def detect_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Detections for serialized OD API tf.Examples."""
        spec = {
            "detection_boxes": tf.TensorSpec([MAX_DETECTIONS, 4], tf.float32),
            "detection_scores": tf.TensorSpec([MAX_DETECTIONS], tf.float32),
            "detection_classes": tf.TensorSpec([MAX_DETECTIONS], tf.float32),
            "num_detections": tf.TensorSpec([], tf.float32),
        }
        return tf.map_fn(self._one, examples, fn_output_signature=spec)


def write_oracle_model(export_dir: str, **kwargs: float) -> str:
    """Saves an `OracleDetector` with the `tf_example` signature and returns `export_dir`."""
    module = OracleDetector(**kwargs)  # type: ignore[arg-type]
    tf.saved_model.save(module, export_dir, signatures={"tf_example": module.detect_examples.get_concrete_function()})
    return export_dir
