"""Box geometry on [ymin, xmin, ymax, xmax] tensors (the OD API's corner order)."""

from __future__ import annotations

import tensorflow as tf


def area(boxes: tf.Tensor) -> tf.Tensor:
    """Areas of [..., 4] boxes."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymax - ymin) * (xmax - xmin)


def pairwise_iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Intersection over union of every box in `boxes1` [N, 4] with every box in `boxes2` [M, 4].

    Returns:
        [N, M] IoU; 0 where the union is empty.

    Example:
        [0, 0, 2, 2] and [1, 1, 3, 3] overlap in a 1x1 square: IoU = 1 / (4 + 4 - 1) = 1/7.
    """
    y1a, x1a, y2a, x2a = tf.split(boxes1, 4, axis=1)
    y1b, x1b, y2b, x2b = tf.split(boxes2, 4, axis=1)
    ih = tf.maximum(tf.minimum(y2a, tf.transpose(y2b)) - tf.maximum(y1a, tf.transpose(y1b)), 0.0)
    iw = tf.maximum(tf.minimum(x2a, tf.transpose(x2b)) - tf.maximum(x1a, tf.transpose(x1b)), 0.0)
    inter = ih * iw
    union = area(boxes1)[:, None] + area(boxes2)[None, :] - inter
    return tf.math.divide_no_nan(inter, union)
