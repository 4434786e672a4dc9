import os

import numpy as np
import pytest
import tensorflow as tf

from detx.components.data.decode import OBJECT_FEATURES, objects
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from testing.data import write_examples


@pytest.fixture(scope="module")
def eval_examples(tmp_path_factory):
    out = write_examples(str(tmp_path_factory.mktemp("ev") / "ex"), 12, seed=4, splits={"eval": 12})
    return read_examples(os.path.join(out, "Split-eval", "*"))


def _oracle(shift=0.0, drop_class=None):
    """Predicts the ground truth (optionally shifted, or without one class) with score 1."""

    def predict(examples):
        out = {"detection_boxes": [], "detection_scores": [], "detection_classes": [], "num_detections": []}
        for raw in examples.numpy():
            boxes, labels, _ = (t.numpy() for t in objects(tf.io.parse_single_example(raw, OBJECT_FEATURES)))
            keep = labels != drop_class
            boxes, labels = boxes[keep] + shift, labels[keep]
            n = len(labels)
            out["detection_boxes"].append(np.pad(boxes, [[0, 100 - n], [0, 0]]))
            out["detection_scores"].append(np.pad(np.ones(n), [0, 100 - n]))
            out["detection_classes"].append(np.pad(labels.astype(float), [0, 100 - n]))
            out["num_detections"].append(float(n))
        return {k: tf.constant(np.asarray(v, dtype=np.float32)) for k, v in out.items()}

    return predict


def test_perfect_detections_score_one(eval_examples):
    m = evaluate(_oracle(), eval_examples, num_classes=3, batch_size=5)
    assert m.num_images == 12
    assert m.map == pytest.approx(1.0) and m.map_50 == pytest.approx(1.0) and m.ar_100 == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in m.ap_per_class.values())


def test_shifted_and_missing_detections_score_less(eval_examples):
    # 3 px on 640: still a match at IoU 0.5 for most boxes, but not at the strict thresholds.
    shifted = evaluate(_oracle(shift=0.005), eval_examples, num_classes=3)
    assert shifted.map_50 > 0.8 and shifted.map < 0.95 and shifted.map < shifted.map_50
    no_squares = evaluate(_oracle(drop_class=2), eval_examples, num_classes=3)
    assert no_squares.ap_per_class[2] == 0.0 and no_squares.ap_per_class[1] == pytest.approx(1.0)
