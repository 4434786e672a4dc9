"""Training on CPU: seeded determinism, crash and resume, and the three export signatures."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.synth import SynthConfig, generate
from detx.components.modeling import anchors
from detx.components.modeling.config import preset
from detx.components.trainer import data, export, train
from testing.data import write_examples

MODEL, TRAIN = preset("tiny")
TRAIN = dataclasses.replace(TRAIN, batch_size=4, train_steps=4, checkpoint_every=2, shuffle_buffer=16)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return write_examples(str(tmp_path_factory.mktemp("ex") / "examples"), 24, seed=5, min_size=48)


def _train(examples, run_dir, config=TRAIN, **kw):
    pattern = os.path.join(examples, "Split-train", "*")
    return train.train(
        lambda b: data.make_dataset(pattern, MODEL, config, batch_size=b),
        MODEL,
        config,
        3,
        run_dir,
        log=lambda _: None,
        **kw,
    )


def test_input_pipeline_shapes_and_targets(examples):
    ds = data.make_dataset(os.path.join(examples, "Split-train", "*"), MODEL, TRAIN)
    images, (cls, boxes, matched) = next(iter(ds))
    num_anchors = len(anchors.generate(MODEL))
    size = MODEL.image_size
    assert images.shape == (4, size, size, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= -1.0 and float(tf.reduce_max(images)) <= 1.0
    assert cls.shape == (4, num_anchors) and boxes.shape == (4, num_anchors, 4)
    assert float(tf.reduce_sum(matched)) > 0
    assert set(np.unique(cls.numpy())) <= {0, 1, 2, 3}


def test_two_runs_with_the_same_seed_give_the_same_losses(examples, tmp_path):
    a = _train(examples, str(tmp_path / "a"))
    b = _train(examples, str(tmp_path / "b"))
    assert a.history["loss"] == b.history["loss"]
    assert a.history["loss"][0] > 0
    # Another seed reads other batches (another order and other augmentations).
    pattern = os.path.join(examples, "Split-train", "*")
    first = next(iter(data.make_dataset(pattern, MODEL, TRAIN)))[0]
    other = next(iter(data.make_dataset(pattern, MODEL, dataclasses.replace(TRAIN, seed=1))))[0]
    again = next(iter(data.make_dataset(pattern, MODEL, TRAIN)))[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert os.listdir(tmp_path / "a" / "logs")  # TensorBoard events
    assert os.path.exists(tmp_path / "a" / "backup" / "training_metadata.json")


class _Crash(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations.numpy() == 3:
            raise RuntimeError("simulated crash")


def test_a_crashed_run_resumes_from_its_last_checkpoint(examples, tmp_path):
    run_dir = str(tmp_path / "run")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(examples, run_dir, callbacks=[_Crash()])
    resumed = _train(examples, run_dir)
    assert resumed.resumed_from_step == 2
    assert len(resumed.history["loss"]) == 1  # only the second epoch ran again


def test_export_answers_three_signatures_identically(examples, tmp_path):
    result = _train(examples, str(tmp_path / "run"))
    path = export.export(result.network, MODEL, os.path.join(examples, LABEL_MAP_FILENAME), str(tmp_path / "model"))
    model = export.load(path)
    assert set(model.signatures) == {"serving_default", "encoded_image", "tf_example"}
    assert os.path.exists(os.path.join(path, "assets", LABEL_MAP_FILENAME))
    image = next(generate(SynthConfig(num_images=1, seed=9)))
    pixels = tf.io.decode_jpeg(image.jpeg)[None]
    by_tensor = model.signatures["serving_default"](input_tensor=pixels)
    by_bytes = model.signatures["encoded_image"](encoded_image=tf.constant([image.jpeg]))
    raw = next(
        iter(
            tf.data.TFRecordDataset(
                tf.io.gfile.glob(os.path.join(examples, "Split-eval", "*")), compression_type="GZIP"
            )
        )
    )
    parsed = tf.io.parse_single_example(raw, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
    by_example = model.signatures["tf_example"](examples=raw[None])
    by_bytes_2 = model.signatures["encoded_image"](encoded_image=parsed["image/encoded"][None])
    assert by_tensor["detection_boxes"].shape == (1, 100, 4)
    assert by_tensor["detection_classes"].dtype == tf.float32
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_array_equal(by_tensor[key].numpy(), by_bytes[key].numpy())
        np.testing.assert_array_equal(by_example[key].numpy(), by_bytes_2[key].numpy())
    n = int(by_tensor["num_detections"][0])
    classes = by_tensor["detection_classes"].numpy()[0]
    assert set(classes[:n]) <= {1.0, 2.0, 3.0} and not classes[n:].any()
    # A batch of two differently sized images through the encoded signature.
    other = next(generate(SynthConfig(num_images=1, seed=2, width=320, height=320)))
    two = model.signatures["encoded_image"](encoded_image=tf.constant([image.jpeg, other.jpeg]))
    np.testing.assert_array_equal(two["detection_scores"].numpy()[:1], by_bytes["detection_scores"].numpy())
