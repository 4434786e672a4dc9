"""Small SavedModels with the detector's three signatures that go wrong in one chosen way each."""

from __future__ import annotations

import os

import tensorflow as tf

_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


class Candidate(tf.Module):
    """Answers two fixed detections per image, or goes wrong as `kind` says.

    kind: "good"; "fails" (an assertion that real images break: they are larger than 2x2);
    "random" (scores drawn anew on every call, so no two runs agree).
    """

    def __init__(self, kind: str) -> None:
        super().__init__(name="candidate")
        self.kind = kind

    def _answer(self, batch: tf.Tensor, height: tf.Tensor) -> dict[str, tf.Tensor]:
        boxes = tf.tile(tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]]]), [batch, 1, 1])
        scores = tf.tile(tf.constant([[0.9, 0.6]]), [batch, 1])
        if self.kind == "random":
            scores = tf.random.uniform([batch, 2], 0.2, 1.0)
        if self.kind == "fails":
            with tf.control_dependencies(
                [tf.debugging.assert_less(height, 3, message="detx-test: this model breaks on real images")]
            ):
                scores = tf.identity(scores)
        classes = tf.tile(tf.constant([[1.0, 2.0]]), [batch, 1])
        return dict(zip(_OUTPUTS, (boxes, scores, classes, tf.fill([batch], 2.0)), strict=True))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
    def detect_tensor(self, input_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(tf.shape(input_tensor)[0], tf.shape(input_tensor)[1])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="encoded_image")])
    def detect_encoded(self, encoded_image: tf.Tensor) -> dict[str, tf.Tensor]:
        height = tf.shape(tf.io.decode_image(encoded_image[0], channels=3, expand_animations=False))[0]
        return self._answer(tf.shape(encoded_image)[0], height)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def detect_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._answer(tf.shape(examples)[0], tf.strings.length(examples[0]))


def write(export_dir: str, kind: str) -> str:
    """Saves a Candidate of `kind`; "unloadable" saves a good one and then corrupts its graph file."""
    module = Candidate("good" if kind == "unloadable" else kind)
    signatures = {
        "serving_default": module.detect_tensor.get_concrete_function(),
        "encoded_image": module.detect_encoded.get_concrete_function(),
        "tf_example": module.detect_examples.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
    if kind == "unloadable":
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"this is not a SavedModel graph")
    return export_dir
