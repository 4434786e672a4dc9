"""The box prior: the most frequent boxes per class, the same for every image, as a SavedModel TFMA can score."""

import numpy as np
import pytest
import tensorflow as tf

from detx.components.evaluation import box_prior
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from testing.data import write_examples


def test_the_most_frequent_cell_of_each_class_comes_first_as_its_mean_box():
    corner = np.array([[0.0, 0.0, 0.2, 0.2]])
    centre = np.array([[0.4, 0.4, 0.6, 0.6]])
    images = [(corner + 0.01 * i, np.array([1])) for i in range(3)] + [(centre, np.array([2]))]
    images.append((np.zeros((0, 4)), np.zeros(0, dtype=np.int64)))  # an image without boxes counts for nothing
    prior = box_prior.fit(images)
    assert prior.num_boxes == 4
    assert prior.classes.tolist() == [1, 2]
    np.testing.assert_allclose(prior.boxes[0], corner[0] + 0.01, atol=1e-6)
    np.testing.assert_allclose(prior.scores, [0.75, 0.25])


def test_no_training_box_is_a_clear_error():
    with pytest.raises(ValueError, match="the train split has no boxes: the box prior has nothing to fit; set"):
        box_prior.fit([(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))])


def test_the_saved_prior_answers_every_image_alike_and_scores_low(tmp_path):
    examples = write_examples(str(tmp_path / "examples"), 40, seed=3, splits={"train": 30, "eval": 10})
    prior = box_prior.fit(box_prior.read_boxes(str(tmp_path / "examples" / "Split-train" / "*")))
    assert prior.num_boxes > 30 and len(prior.scores) <= box_prior.MAX_DETECTIONS
    model = tf.saved_model.load(box_prior.write_model(prior, str(tmp_path / "prior")))
    eval_examples = read_examples(f"{examples}/Split-eval/*")
    out = model.signatures["tf_example"](examples=tf.constant(eval_examples[:2]))
    assert out["detection_boxes"].shape == (2, box_prior.MAX_DETECTIONS, 4)
    np.testing.assert_array_equal(out["detection_boxes"][0], out["detection_boxes"][1])
    assert out["num_detections"].numpy().tolist() == [len(prior.scores)] * 2
    # pycocotools on the same model: it finds a few boxes by luck of place, far from a trained detector.
    assert evaluate(model.signatures["tf_example"], eval_examples, num_classes=3).map_50 < 0.3
