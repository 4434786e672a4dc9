"""The Faster R-CNN box coder: boxes relative to anchors, as the SSD regresses them."""

from __future__ import annotations

import tensorflow as tf

# Added to anchor and box sizes before dividing or taking logs, as the OD API does.
EPSILON = 1e-8


def _centers(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin


def encode(boxes: tf.Tensor, anchors: tf.Tensor, scales: tuple[float, float, float, float]) -> tf.Tensor:
    """Encodes [..., 4] corner boxes against anchors of the same shape as [ty, tx, th, tw].

    ty = sy * (yc - yc_a) / h_a, th = sh * log(h / h_a), likewise for x and w.

    Example:
        With scales (10, 10, 5, 5), a box equal to its anchor encodes to [0, 0, 0, 0];
        one shifted down by 10% of the anchor's height to [1, 0, 0, 0].
    """
    yc, xc, h, w = _centers(boxes)
    yca, xca, ha, wa = _centers(anchors)
    ha, wa, h, w = ha + EPSILON, wa + EPSILON, h + EPSILON, w + EPSILON
    sy, sx, sh, sw = scales
    return tf.stack(
        [sy * (yc - yca) / ha, sx * (xc - xca) / wa, sh * tf.math.log(h / ha), sw * tf.math.log(w / wa)], axis=-1
    )


def decode(codes: tf.Tensor, anchors: tf.Tensor, scales: tuple[float, float, float, float]) -> tf.Tensor:
    """Inverse of `encode`: [..., 4] codes and anchors to corner boxes."""
    yca, xca, ha, wa = _centers(anchors)
    sy, sx, sh, sw = scales
    ty, tx, th, tw = tf.unstack(codes, axis=-1)
    h = tf.exp(th / sh) * ha
    w = tf.exp(tw / sw) * wa
    yc = ty / sy * ha + yca
    xc = tx / sx * wa + xca
    return tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)
