"""Argmax matching of anchors to ground-truth boxes, and the SSD's training targets."""

from __future__ import annotations

import tensorflow as tf

from detx.components.modeling import box_coder, box_ops


def argmax_match(iou: tf.Tensor, threshold: float, may_force: tf.Tensor | None = None) -> tf.Tensor:
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
        may_force: [num_boxes] bool, the boxes that claim their best anchor (None: all).

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
        if may_force is not None:  # a negative segment id drops the claim
            best_anchor = tf.where(may_force, best_anchor, -1)
        claimed = tf.math.unsorted_segment_min(tf.range(num_boxes, dtype=tf.int32), best_anchor, num_anchors)
        return tf.where(claimed < num_boxes, claimed, matches)

    return tf.cond(num_boxes > 0, _match, lambda: -tf.ones([num_anchors], tf.int32))


def assign_targets(
    gt_boxes: tf.Tensor,
    gt_labels: tf.Tensor,
    anchors: tf.Tensor,
    threshold: float,
    scales: tuple[float, float, float, float],
    crowd: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Training targets of one image.

    Crowd boxes (COCO's `iscrowd`: a region of many objects under one box) are
    ignore regions, as in COCO's evaluation: an anchor whose match is a crowd
    box is neither a positive nor a background example (weight 0 in both
    losses). The OD API would train it as a positive; dropping the crowd box
    would train it as background.

    Args:
        gt_boxes: [N, 4] normalized corner boxes.
        gt_labels: [N] int labels, 1-based.
        anchors: [A, 4].
        threshold: matching IoU.
        scales: box coder scales.
        crowd: [N] bool, True for crowd boxes (None: no crowd).

    Returns:
        (class targets [A] int32: the label of a matched anchor, 0 otherwise;
         box targets [A, 4]: encoded boxes, zeros for unmatched anchors;
         matched [A] float32: 1 for matched anchors, 0 for background, -1 for ignored ones)
    """
    if crowd is None:
        crowd = tf.zeros(tf.shape(gt_labels), tf.bool)
    # A crowd box is no object to train, so it never claims an anchor for itself.
    matches = argmax_match(box_ops.pairwise_iou(gt_boxes, anchors), threshold, tf.logical_not(crowd))
    # Unmatched anchors point at an appended row (zero box, label 0, not crowd), so the gathers
    # also work with no boxes.
    index = tf.where(matches >= 0, matches, tf.shape(gt_boxes)[0])
    ignored = tf.gather(tf.concat([crowd, [False]], 0), index)
    matched = tf.logical_and(matches >= 0, tf.logical_not(ignored))
    boxes = tf.gather(tf.concat([gt_boxes, tf.zeros([1, 4], gt_boxes.dtype)], 0), index)
    labels = tf.where(matched, tf.gather(tf.concat([tf.cast(gt_labels, tf.int32), [0]], 0), index), 0)
    codes = box_coder.encode(boxes, anchors, scales)
    box_targets = tf.where(matched[:, None], codes, tf.zeros_like(codes))
    return labels, box_targets, tf.cast(matched, tf.float32) - tf.cast(ignored, tf.float32)
