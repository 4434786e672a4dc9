"""The SSD's losses: sigmoid focal classification and smooth L1 localization, normalized by matches."""

from __future__ import annotations

import tensorflow as tf


def sigmoid_focal_loss(labels: tf.Tensor, logits: tf.Tensor, alpha: float, gamma: float) -> tf.Tensor:
    """Element-wise focal loss: CE * (1 - p_t)**gamma * (t * alpha + (1 - t) * (1 - alpha)).

    Example:
        A confident correct negative (t = 0, p = 0.01) costs almost nothing:
        CE = 0.01, (1 - p_t)**2 = 1e-4, weight 0.75, so about 7.5e-7.

    Args:
        labels: targets in {0, 1}, same shape as logits.
        logits: raw class scores.
        alpha: weight of positives (1 - alpha for negatives).
        gamma: focusing exponent.
    """
    labels = tf.cast(labels, logits.dtype)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    p = tf.sigmoid(logits)
    p_t = labels * p + (1 - labels) * (1 - p)
    return ce * tf.pow(1 - p_t, gamma) * (labels * alpha + (1 - labels) * (1 - alpha))


def smooth_l1(targets: tf.Tensor, predictions: tf.Tensor, delta: float) -> tf.Tensor:
    """Huber loss per element: 0.5 x**2 for |x| <= delta, else delta * (|x| - 0.5 delta)."""
    x = tf.abs(predictions - targets)
    return tf.where(x <= delta, 0.5 * tf.square(x), delta * (x - 0.5 * delta))


def ssd_losses(
    cls_targets: tf.Tensor,
    box_targets: tf.Tensor,
    matched: tf.Tensor,
    logits: tf.Tensor,
    box_codes: tf.Tensor,
    alpha: float,
    gamma: float,
    delta: float,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Classification and localization losses of a batch, as the Zoo config defines them.

    The class target of a matched anchor is its one-hot label over K + 1
    columns; an unmatched anchor's target is all zeros (the background column
    is never 1, `encode_background_as_zeros`). Both losses are summed over the
    batch and divided by the number of matched anchors (at least 1); the
    localization loss is also divided by the code size 4.

    Args:
        cls_targets: [B, A] int labels (0 = unmatched).
        box_targets: [B, A, 4] encoded boxes.
        matched: [B, A] 1.0 for matched anchors, 0.0 for background, -1.0 for ignored ones.
        logits: [B, A, K + 1] predicted logits.
        box_codes: [B, A, 4] predicted codes.
        alpha: focal loss alpha.
        gamma: focal loss gamma.
        delta: smooth L1 delta.

    Returns:
        (classification loss, localization loss), float32 scalars.
    """
    logits = tf.cast(logits, tf.float32)
    box_codes = tf.cast(box_codes, tf.float32)
    num_columns = tf.shape(logits)[-1]
    one_hot = tf.one_hot(tf.where(matched > 0, cls_targets, -1), num_columns)
    positive = tf.cast(matched > 0, tf.float32)
    counted = tf.cast(matched >= 0, tf.float32)  # ignored anchors (-1, crowd regions) count in neither loss
    normalizer = tf.maximum(tf.reduce_sum(positive), 1.0)
    focal = tf.reduce_sum(sigmoid_focal_loss(one_hot, logits, alpha, gamma), axis=-1)
    cls = tf.reduce_sum(focal * counted) / normalizer
    loc = tf.reduce_sum(tf.reduce_sum(smooth_l1(box_targets, box_codes, delta), axis=-1) * positive) / normalizer / 4.0
    return cls, loc
