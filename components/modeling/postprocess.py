"""From the network's codes and logits to Zoo-format detections."""

from __future__ import annotations

import tensorflow as tf

from detx.components.modeling import box_coder
from detx.components.modeling.config import ModelConfig


def postprocess(codes: tf.Tensor, logits: tf.Tensor, anchors: tf.Tensor, config: ModelConfig) -> dict[str, tf.Tensor]:
    """Decodes boxes, applies sigmoid scores and per-class NMS, as the Zoo's exported model.

    Column 0 (background) is dropped after the sigmoid and class ids are
    shifted by one, so `detection_classes` holds 1-based label ids as floats.
    Entries past `num_detections` are zeros.

    Args:
        codes: [B, A, 4] box codes.
        logits: [B, A, K + 1] class logits.
        anchors: [A, 4] anchors.
        config: NMS settings and box coder scales.

    Returns:
        detection_boxes [B, N, 4] (normalized ymin, xmin, ymax, xmax), detection_scores [B, N],
        detection_classes [B, N], num_detections [B], with N = max_detections.
    """
    boxes = tf.clip_by_value(box_coder.decode(tf.cast(codes, tf.float32), anchors[None], config.box_code_scales), 0, 1)
    scores = tf.sigmoid(tf.cast(logits, tf.float32))[:, :, 1:]
    nms = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :],
        scores,
        max_output_size_per_class=config.max_detections_per_class,
        max_total_size=config.max_detections,
        iou_threshold=config.iou_threshold,
        score_threshold=config.score_threshold,
        pad_per_class=False,
        clip_boxes=True,
    )
    valid = tf.sequence_mask(nms.valid_detections, config.max_detections, dtype=tf.float32)
    return {
        "detection_boxes": nms.nmsed_boxes * valid[:, :, None],
        "detection_scores": nms.nmsed_scores * valid,
        "detection_classes": (nms.nmsed_classes + 1.0) * valid,
        "num_detections": tf.cast(nms.valid_detections, tf.float32),
    }
