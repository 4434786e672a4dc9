"""Reading the objects back out of an OD API tf.Example, as training, evaluation and the notebooks do.

The ingestion side writes the layout (`records.build_example`); this is its
one reader of boxes, labels and crowd flags in TensorFlow, so evaluation does
not depend on the trainer.
"""

from __future__ import annotations

import tensorflow as tf

from detx.components.data import features as F

# The per-object features of an OD API tf.Example, as training and evaluation read them.
OBJECT_FEATURES = {
    F.XMIN: tf.io.VarLenFeature(tf.float32),
    F.YMIN: tf.io.VarLenFeature(tf.float32),
    F.XMAX: tf.io.VarLenFeature(tf.float32),
    F.YMAX: tf.io.VarLenFeature(tf.float32),
    F.LABEL: tf.io.VarLenFeature(tf.int64),
    F.IS_CROWD: tf.io.VarLenFeature(tf.int64),
}


def objects(parsed: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(boxes [N, 4] as ymin, xmin, ymax, xmax; labels [N] int32; is_crowd [N] bool) of a parsed example.

    A missing or short is_crowd list counts as not crowd.
    """
    boxes = tf.stack([tf.sparse.to_dense(parsed[k]) for k in (F.YMIN, F.XMIN, F.YMAX, F.XMAX)], axis=-1)
    labels = tf.cast(tf.sparse.to_dense(parsed[F.LABEL]), tf.int32)
    crowd = tf.sparse.to_dense(parsed[F.IS_CROWD])[: tf.shape(labels)[0]]
    crowd = tf.pad(crowd, [[0, tf.shape(labels)[0] - tf.shape(crowd)[0]]])
    return boxes, labels, tf.cast(crowd, tf.bool)
