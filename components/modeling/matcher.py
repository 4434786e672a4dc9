"""Argmax matching of anchors to ground-truth boxes, and the SSD's training targets."""

from __future__ import annotations

import tensorflow as tf

from detx.components.modeling import box_coder, box_ops


def argmax_match(iou: tf.Tensor, threshold: float) -> tf.Tensor:
    """For each anchor, the index of its box, or -1 if it matches none.

    An anchor matches its highest-IoU box when that IoU is at least
    `threshold`. Then every box also claims its own best anchor, even below the
    threshold (the OD API's force_match_for_each_row), so no box goes untrained.

    Example:
        With threshold 0.5, a box whose best anchor overlaps it with IoU 0.3
        still gets that anchor; an anchor at IoU 0.49 with every box gets -1.

    Args:
        iou: [num_boxes, num_anchors] similarities.
        threshold: the matched (and unmatched) threshold; there is no ignore band.

    Returns:
        [num_anchors] int32 box indices or -1.
    """
    num_boxes = tf.shape(iou)[0]
    num_anchors = tf.shape(iou)[1]

    def _match() -> tf.Tensor:
        best_box = tf.argmax(iou, axis=0, output_type=tf.int32)
        best_iou = tf.reduce_max(iou, axis=0)
        matches = tf.where(best_iou >= threshold, best_box, -tf.ones_like(best_box))
        best_anchor = tf.argmax(iou, axis=1, output_type=tf.int32)  # [num_boxes]
        # Boxes sharing a best anchor: the first in annotation order gets it, as in the OD API's
        # argmax matcher (argmax over its one-hot force-match indicators picks the first row).
        claimed = tf.math.unsorted_segment_min(tf.range(num_boxes, dtype=tf.int32), best_anchor, num_anchors)
        return tf.where(claimed < num_boxes, claimed, matches)

    return tf.cond(num_boxes > 0, _match, lambda: -tf.ones([num_anchors], tf.int32))


def assign_targets(
    gt_boxes: tf.Tensor,
    gt_labels: tf.Tensor,
    anchors: tf.Tensor,
    threshold: float,
    scales: tuple[float, float, float, float],
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Training targets of one image.

    Args:
        gt_boxes: [N, 4] normalized corner boxes.
        gt_labels: [N] int labels, 1-based.
        anchors: [A, 4].
        threshold: matching IoU.
        scales: box coder scales.

    Returns:
        (class targets [A] int32: the label of a matched anchor, 0 otherwise;
         box targets [A, 4]: encoded boxes, zeros for unmatched anchors;
         matched [A] float32: 1 for matched anchors)
    """
    matches = argmax_match(box_ops.pairwise_iou(gt_boxes, anchors), threshold)
    matched = matches >= 0
    # Unmatched anchors point at an appended all-zero row, so the gathers also work with no boxes.
    index = tf.where(matched, matches, tf.shape(gt_boxes)[0])
    boxes = tf.gather(tf.concat([gt_boxes, tf.zeros([1, 4], gt_boxes.dtype)], 0), index)
    labels = tf.gather(tf.concat([tf.cast(gt_labels, tf.int32), [0]], 0), index)
    codes = box_coder.encode(boxes, anchors, scales)
    box_targets = tf.where(matched[:, None], codes, tf.zeros_like(codes))
    return labels, box_targets, tf.cast(matched, tf.float32)
