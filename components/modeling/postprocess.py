"""From the network's codes and logits to Zoo-format detections."""

from __future__ import annotations

import tensorflow as tf

from detx.components.modeling import box_coder
from detx.components.modeling.config import ModelConfig


def postprocess(codes: tf.Tensor, logits: tf.Tensor, anchors: tf.Tensor, config: ModelConfig) -> dict[str, tf.Tensor]:
    """Decodes boxes, applies sigmoid scores and per-class NMS, as the Zoo's exported model.

    NMS runs on the unclipped boxes; the survivors are clipped to the image and
    those left with no area are never reported (a box wholly outside the image).

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
    # As the OD API (ssd_meta_arch.postprocess -> post_processing.multiclass_non_max_suppression):
    # per-class NMS on the *unclipped* decoded boxes, then clip to the image, prune boxes left
    # with no area, and only then keep the best max_detections.
    boxes = box_coder.decode(tf.cast(codes, tf.float32), anchors[None], config.box_code_scales)
    scores = tf.sigmoid(tf.cast(logits, tf.float32))[:, :, 1:]
    every_class = config.max_detections_per_class * int(scores.shape[-1])
    nms = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :],
        scores,
        max_output_size_per_class=config.max_detections_per_class,
        max_total_size=every_class,  # all per-class survivors: pruning may free places in the top N
        iou_threshold=config.iou_threshold,
        score_threshold=config.score_threshold,
        pad_per_class=False,
        clip_boxes=True,  # clips the survivors to [0, 1]; NMS itself saw the unclipped boxes
    )
    ymin, xmin, ymax, xmax = tf.unstack(nms.nmsed_boxes, axis=-1)
    kept = (ymax - ymin) * (xmax - xmin) > 0
    kept &= tf.sequence_mask(nms.valid_detections, tf.shape(kept)[1])
    # Kept detections first, in score order (a stable sort of the kept flags), cut to the top N.
    order = tf.argsort(tf.cast(~kept, tf.int32), axis=1, stable=True)[:, : config.max_detections]
    count = tf.minimum(tf.reduce_sum(tf.cast(kept, tf.int32), axis=1), config.max_detections)
    valid = tf.sequence_mask(count, config.max_detections, dtype=tf.float32)

    def top(values: tf.Tensor) -> tf.Tensor:
        picked = tf.gather(values, order, batch_dims=1)
        pad = config.max_detections - tf.shape(picked)[1]  # fewer candidates than max_detections
        return tf.pad(picked, [[0, 0], [0, pad]] + [[0, 0]] * (len(values.shape) - 2))

    return {
        "detection_boxes": top(nms.nmsed_boxes) * valid[:, :, None],
        "detection_scores": top(nms.nmsed_scores) * valid,
        "detection_classes": (top(nms.nmsed_classes) + 1.0) * valid,
        "num_detections": tf.cast(count, tf.float32),
    }
