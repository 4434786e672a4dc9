"""The exported detector batches concurrent calls inside its graph, after resizing, so image sizes never matter."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from detx.components.data.synth import SynthConfig, generate
from detx.components.trainer.export import Batching
from tests.serving.conftest import export_tiny


def _concurrently(calls):
    results = [None] * len(calls)
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, calls[i]())) for i in range(len(calls))]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.monotonic() - start


def _images():
    small = [i.jpeg for i in generate(SynthConfig(num_images=2, seed=1, width=320, height=240))]
    large = [i.jpeg for i in generate(SynthConfig(num_images=2, seed=2, width=640, height=480, min_size=60))]
    return [small[0], large[0], small[1], large[1]]


@pytest.fixture(scope="module")
def unbatched(tmp_path_factory):
    return tf.saved_model.load(export_tiny(str(tmp_path_factory.mktemp("m") / "plain"), seed=3, batching=None))


def test_concurrent_calls_with_images_of_different_sizes_share_one_execution_and_keep_their_boxes(tmp_path, unbatched):
    # A batch runs when full or when its oldest call has waited the timeout: with 4 calls, a full
    # batch of 4 and a 60 s timeout, finishing in seconds means the four calls ran as one batch.
    model = tf.saved_model.load(
        export_tiny(str(tmp_path / "m"), seed=3, batching=Batching(max_batch_size=4, timeout_micros=60_000_000))
    )
    images = _images()
    fn = model.signatures["encoded_image"]
    results, seconds = _concurrently([lambda d=d: fn(encoded_image=tf.constant([d])) for d in images])
    assert seconds < 30, f"the four calls did not share a batch ({seconds:.0f} s)"
    for image, got in zip(images, results, strict=True):
        want = unbatched.signatures["encoded_image"](encoded_image=tf.constant([image]))
        n = int(want["num_detections"][0])
        assert int(got["num_detections"][0]) == n
        np.testing.assert_allclose(got["detection_boxes"][0, :n], want["detection_boxes"][0, :n], atol=1e-5)
        np.testing.assert_allclose(got["detection_scores"][0, :n], want["detection_scores"][0, :n], atol=1e-5)


def test_a_request_larger_than_a_batch_is_split_and_raw_tensors_of_any_size_work(tmp_path, unbatched):
    model = tf.saved_model.load(export_tiny(str(tmp_path / "m"), seed=3, batching=Batching(max_batch_size=2)))
    images = _images() * 2  # 8 images in one call, executions of at most 2
    got = model.signatures["encoded_image"](encoded_image=tf.constant(images))
    want = unbatched.signatures["encoded_image"](encoded_image=tf.constant(images))
    np.testing.assert_allclose(got["detection_scores"], want["detection_scores"], atol=1e-5)
    for shape in ([1, 100, 80, 3], [2, 37, 211, 3]):
        pixels = tf.random.uniform(shape, maxval=255, dtype=tf.int32, seed=1)
        pixels = tf.cast(pixels, tf.uint8)
        np.testing.assert_allclose(
            model.signatures["serving_default"](input_tensor=pixels)["detection_boxes"],
            unbatched.signatures["serving_default"](input_tensor=pixels)["detection_boxes"],
            atol=1e-5,
        )


def _export_with_noisy_weights(export_dir, seed, batching):
    """A tiny detector whose every weight is random (a fresh one has a constant head: equal answers)."""
    import keras

    from detx.components.data.synth import label_map
    from detx.components.modeling.config import preset
    from detx.components.modeling.network import build_network
    from detx.components.trainer import export

    keras.utils.set_random_seed(seed)
    model_config, _ = preset("tiny")
    network = build_network(model_config, 3)
    rng = np.random.default_rng(seed)
    for variable in network.model.weights:
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape).astype(variable.dtype))
    path = os.path.join(os.path.dirname(export_dir), "label_map.pbtxt")
    label_map().write(path)
    return export.export(network, model_config, path, export_dir, batching=batching)


def test_two_versions_loaded_in_one_process_never_share_a_batch(tmp_path):
    # Different weights; a shared queue would run one version's calls with the other's weights.
    batching = Batching(max_batch_size=4, timeout_micros=3_000_000)
    a = tf.saved_model.load(_export_with_noisy_weights(str(tmp_path / "a"), 1, batching))
    b = tf.saved_model.load(_export_with_noisy_weights(str(tmp_path / "b"), 2, batching))
    image = tf.constant([_images()[0]])
    alone = {
        "a": a.signatures["encoded_image"](encoded_image=image)["detection_boxes"].numpy(),
        "b": b.signatures["encoded_image"](encoded_image=image)["detection_boxes"].numpy(),
    }
    assert not np.allclose(alone["a"], alone["b"])
    calls = [lambda m=m: m.signatures["encoded_image"](encoded_image=image)["detection_boxes"] for m in (a, b, a, b)]
    results, _ = _concurrently(calls)
    for name, got in zip("abab", results, strict=True):
        np.testing.assert_allclose(got, alone[name], atol=1e-5)
