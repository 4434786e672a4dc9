"""The input pipeline's augmentation: the Zoo's flip and crop, robust to boxes a hair outside [0, 1]."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from detx.components.trainer.data import augment


def test_boxes_a_hair_outside_the_image_do_not_stop_training_and_stay_valid():
    image = tf.zeros([240, 320, 3], tf.uint8)
    boxes = tf.constant([[-1e-7, 0.1, 0.5, 1.0000001], [0.2, -1e-7, 1.0000001, 0.4]], tf.float32)
    labels = tf.constant([1, 2])
    for seed in range(20):  # several crops and flips
        cropped, out_boxes, out_labels, _ = augment(image, boxes, labels, tf.constant([seed, 7], tf.int64))
        out = out_boxes.numpy()
        assert cropped.shape[2] == 3 and len(out) == len(out_labels.numpy())
        assert (out >= 0).all() and (out <= 1).all()
        assert (out[:, 2] > out[:, 0]).all() and (out[:, 3] > out[:, 1]).all()


def test_the_crop_keeps_what_is_inside_its_window():
    image = tf.zeros([100, 100, 3], tf.uint8)
    boxes = tf.constant([[0.0, 0.0, 1.0, 1.0]], tf.float32)  # the whole image: always inside the crop
    _, out, labels, _ = augment(image, boxes, tf.constant([3]), tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(out.numpy(), [[0.0, 0.0, 1.0, 1.0]], atol=1e-6)
    assert labels.numpy().tolist() == [3]


def test_crowd_flags_travel_with_their_boxes_through_the_crop():
    image = tf.zeros([100, 100, 3], tf.uint8)
    boxes = tf.constant([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.01, 0.01], [0.2, 0.2, 0.9, 0.9]], tf.float32)
    crowd = tf.constant([True, False, False])
    for seed in range(10):
        _, _, labels, out_crowd = augment(image, boxes, tf.constant([1, 2, 3]), tf.constant([seed, 1], tf.int64), crowd)
        assert out_crowd.numpy().tolist() == [label == 1 for label in labels.numpy()]
