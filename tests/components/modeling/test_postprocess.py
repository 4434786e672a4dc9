"""Post-processing at the image border as the OD API does it: NMS on unclipped boxes, then clip, then prune."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from detx.components.modeling.config import preset
from detx.components.modeling.postprocess import postprocess

CONFIG = dataclasses.replace(preset("tiny")[0], max_detections=4, max_detections_per_class=4, score_threshold=0.05)


def _run(boxes, scores, config=CONFIG):
    """Raw outputs whose decoded boxes are `boxes` (zero codes decode to the anchors) with `scores` [A, K]."""
    anchors = tf.constant(boxes, tf.float32)
    probabilities = np.asarray(scores, np.float32)
    logits = np.log(probabilities / (1 - probabilities))
    logits = np.concatenate([np.full((len(boxes), 1), -10.0, np.float32), logits], axis=1)  # background column
    out = postprocess(tf.zeros([1, len(boxes), 4]), tf.constant(logits[None]), anchors, config)
    n = int(out["num_detections"][0])
    return (
        out["detection_boxes"][0, :n].numpy(),
        out["detection_scores"][0, :n].numpy(),
        out["detection_classes"][0, :n].numpy(),
        out,
    )


def test_a_top_scoring_box_wholly_outside_the_image_is_never_reported():
    boxes, scores, classes, out = _run([[1.1, 0.2, 1.3, 0.4], [0.2, 0.2, 0.4, 0.4]], [[0.99], [0.8]])
    np.testing.assert_allclose(boxes, [[0.2, 0.2, 0.4, 0.4]], atol=1e-6)
    np.testing.assert_allclose(scores, [0.8], atol=1e-6)
    assert classes.tolist() == [1.0]
    assert not out["detection_boxes"][0, 1:].numpy().any()  # padding stays zeros


def test_two_boxes_overlapping_mostly_outside_suppress_each_other_as_unclipped():
    # Unclipped IoU 0.7 / 0.9 = 0.78 > 0.6: the second goes. Clipped, their IoU would be 0.5 and both stay.
    boxes, scores, _, _ = _run([[0.8, 0.1, 1.6, 0.3], [0.9, 0.1, 1.7, 0.3]], [[0.9], [0.85]])
    np.testing.assert_allclose(boxes, [[0.8, 0.1, 1.0, 0.3]], atol=1e-6)  # clipped after NMS
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)


def test_a_box_crossing_the_edge_is_clipped_and_other_classes_are_untouched():
    boxes, _, classes, _ = _run([[-0.1, 0.5, 0.3, 0.7], [-0.1, 0.5, 0.3, 0.7]], [[0.9, 0.01], [0.01, 0.7]])
    np.testing.assert_allclose(boxes, [[0.0, 0.5, 0.3, 0.7], [0.0, 0.5, 0.3, 0.7]], atol=1e-6)
    assert classes.tolist() == [1.0, 2.0]  # NMS is per class


def test_a_pruned_box_frees_its_place_in_the_top_n():
    config = dataclasses.replace(CONFIG, max_detections=2)
    inside = [[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.6]]
    boxes, scores, _, _ = _run([[2.0, 2.0, 2.5, 2.5], *inside], [[0.99], [0.9], [0.8]], config)
    np.testing.assert_allclose(boxes, inside, atol=1e-6)
    np.testing.assert_allclose(scores, [0.9, 0.8], atol=1e-6)


def test_boxes_inside_the_image_get_exactly_tensorflows_per_class_nms():
    rng = np.random.default_rng(0)
    corners = np.sort(rng.uniform(0, 1, (30, 2, 2)), axis=1)
    raw = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], -1)
    scores = rng.uniform(0.06, 0.99, (30, 2))
    boxes, got_scores, classes, _ = _run(raw, scores)
    want = tf.image.combined_non_max_suppression(
        tf.constant(raw[None, :, None, :], tf.float32), tf.constant(scores[None], tf.float32), 4, 4, 0.6, 0.05
    )
    n = int(want.valid_detections[0])
    np.testing.assert_allclose(boxes, want.nmsed_boxes[0, :n], atol=1e-6)
    np.testing.assert_allclose(got_scores, want.nmsed_scores[0, :n], atol=1e-6)
    np.testing.assert_array_equal(classes, want.nmsed_classes[0, :n] + 1)
