"""Objects read back from an OD API tf.Example: y-first boxes, int32 labels, crowd flags padded."""

import numpy as np
import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.decode import OBJECT_FEATURES, objects


def _example(crowd):
    feature = {
        F.XMIN: tf.train.Feature(float_list=tf.train.FloatList(value=[0.1, 0.5])),
        F.YMIN: tf.train.Feature(float_list=tf.train.FloatList(value=[0.2, 0.6])),
        F.XMAX: tf.train.Feature(float_list=tf.train.FloatList(value=[0.3, 0.7])),
        F.YMAX: tf.train.Feature(float_list=tf.train.FloatList(value=[0.4, 0.8])),
        F.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[2, 1])),
        F.IS_CROWD: tf.train.Feature(int64_list=tf.train.Int64List(value=crowd)),
    }
    raw = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    return tf.io.parse_single_example(raw, OBJECT_FEATURES)


def test_boxes_are_y_first_and_labels_int32():
    boxes, labels, crowd = objects(_example([0, 1]))
    np.testing.assert_allclose(boxes.numpy(), [[0.2, 0.1, 0.4, 0.3], [0.6, 0.5, 0.8, 0.7]])
    assert labels.dtype == tf.int32 and labels.numpy().tolist() == [2, 1]
    assert crowd.numpy().tolist() == [False, True]


def test_a_short_or_missing_crowd_list_counts_as_not_crowd():
    assert objects(_example([1]))[2].numpy().tolist() == [True, False]
    assert objects(_example([]))[2].numpy().tolist() == [False, False]
