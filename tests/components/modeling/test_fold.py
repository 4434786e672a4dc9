"""Batch norm folded into the convolution before it: the same detections as the trained network, none of BN's ops."""

from __future__ import annotations

import collections
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from detx.components.data.synth import label_map
from detx.components.modeling.config import ModelConfig, preset
from detx.components.modeling.fold import fold_batchnorm, folded_conv
from detx.components.modeling.network import DetectorNetwork, build_network
from detx.components.trainer import export
from detx.components.trainer.data import preprocess

# The ops of one Keras 3 BN in inference (tf.nn.batch_normalization): 1 Rsqrt, 3 Mul, 1 Sub, 2 AddV2
# (one of them var + epsilon); a folded pair adds one BiasAdd instead.
BN_OPS = {"Rsqrt": 1, "Mul": 3, "Sub": 1, "AddV2": 2, "BiasAdd": -1}


def _pixels(seed: int, shape: tuple[int, ...] = (2, 240, 320, 3)) -> tf.Tensor:
    return tf.cast(tf.random.stateless_uniform(shape, (seed, 2), maxval=256, dtype=tf.int32), tf.uint8)


def _network(name: str, seed: int = 0, freeze_batchnorm: bool = False) -> tuple[DetectorNetwork, ModelConfig]:
    """A network whose BNs have non-trivial statistics and whose heads give spread scores.

    A fresh BN is near identity, so folding it could not fail; random statistics of the wrong
    scale saturate every relu6, and equal scores make the order of detections arbitrary. So each
    BN gets its batch statistics on an image batch, perturbed, and random gamma and beta.
    """
    keras.utils.set_random_seed(seed)
    config, _ = preset(name)
    network = build_network(config, 3)
    rng = np.random.default_rng(seed)
    for variable in network.class_head.weights + network.box_head.weights:
        variable.assign(variable.numpy() + rng.normal(0, 0.3, variable.shape))
    for norm in network.batch_norms():
        norm.momentum = 0.0  # one training call sets the moving statistics to the batch's
    network.model(preprocess(_pixels(seed), config.image_size), training=True)
    for norm in network.batch_norms():
        c, std = norm.moving_mean.shape[0], np.sqrt(norm.moving_variance.numpy())
        norm.moving_mean.assign(norm.moving_mean.numpy() + rng.normal(0, 0.2, c) * std)
        norm.moving_variance.assign(norm.moving_variance.numpy() * rng.uniform(0.5, 2.0, c))
        norm.gamma.assign(rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c, p=[0.2, 0.8]))
        norm.beta.assign(rng.normal(0, 0.3, c))
    if not freeze_batchnorm:
        return network, config
    frozen = build_network(config, 3, freeze_batchnorm=True)
    frozen.model.set_weights(network.model.get_weights())
    return frozen, config


def _export_both(tmp_path: str, network: DetectorNetwork, config: ModelConfig) -> dict[bool, object]:
    label_map_path = os.path.join(tmp_path, "label_map.pbtxt")
    label_map().write(label_map_path)
    return {
        fold: tf.saved_model.load(
            export.export(network, config, label_map_path, os.path.join(tmp_path, f"fold_{fold}"), fold_batchnorm=fold)
        )
        for fold in (False, True)
    }


def _op_counts(signature) -> collections.Counter:
    """Ops of a signature's graph and of every function it calls (the network runs inside BatchFunction's)."""
    graph = signature.graph.as_graph_def()
    counts = collections.Counter(node.op for node in graph.node)
    for function in graph.library.function:
        counts.update(node.op for node in function.node_def)
    return counts


def _assert_same_detections(got: dict, want: dict) -> None:
    n = want["num_detections"].numpy()
    np.testing.assert_array_equal(got["num_detections"], n)
    assert n.min() > 0
    np.testing.assert_array_equal(got["detection_classes"], want["detection_classes"])
    np.testing.assert_allclose(got["detection_scores"], want["detection_scores"], atol=1e-4)
    np.testing.assert_allclose(got["detection_boxes"], want["detection_boxes"], atol=1e-4)


@pytest.mark.parametrize("name", ["tiny", "zoo320"])
def test_the_folded_export_detects_as_the_unfolded_one_with_no_batch_norm_ops_left(tmp_path, name):
    network, config = _network(name)
    models = _export_both(str(tmp_path), network, config)
    pixels = _pixels(0)
    raw = {fold: models[fold].signatures["serving_default"](input_tensor=pixels) for fold in (False, True)}
    _assert_same_detections(raw[True], raw[False])
    # The scores are spread, so equal detections are not equal by saturation.
    assert np.ptp(raw[False]["detection_scores"].numpy()[0]) > 0.02

    norms = len(network.batch_norms())
    assert norms == {"tiny": 66, "zoo320": 76}[name]  # zoo320: the OD API's 76 FusedBatchNormV3
    ops = {fold: _op_counts(models[fold].signatures["serving_default"]) for fold in (False, True)}
    assert ops[False]["Rsqrt"] == norms
    assert ops[True]["Rsqrt"] == 0
    assert ops[True]["FusedBatchNormV3"] == ops[True]["FusedBatchNorm"] == 0
    for op, per_norm in BN_OPS.items():
        assert ops[False][op] - ops[True][op] == per_norm * norms, op
    # Nothing else changed: the same convolutions and the batching op.
    for op in ("Conv2D", "DepthwiseConv2dNative", "BatchFunction"):
        assert ops[True][op] == ops[False][op], op
    assert os.path.exists(os.path.join(str(tmp_path), "fold_True", "assets", "label_map.pbtxt"))


def test_every_signature_of_the_folded_export_matches_and_frozen_batch_norm_still_exports(tmp_path):
    network, config = _network("tiny", seed=1, freeze_batchnorm=True)
    models = _export_both(str(tmp_path), network, config)
    pixels = _pixels(1, (1, 200, 150, 3))
    png = tf.io.encode_png(pixels[0])
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png.numpy()]))}
        )
    ).SerializeToString()
    calls = {
        "serving_default": {"input_tensor": pixels},
        "encoded_image": {"encoded_image": tf.stack([png])},
        "tf_example": {"examples": tf.constant([example])},
    }
    for signature, kwargs in calls.items():
        got, want = (models[fold].signatures[signature](**kwargs) for fold in (True, False))
        assert sorted(got) == sorted(want) == sorted(export.OUTPUTS)
        _assert_same_detections(got, want)


def test_folding_leaves_the_training_network_alone_and_folds_the_shared_tower_per_level():
    network, _ = _network("tiny")
    before = [w.numpy().copy() for w in network.model.weights]
    layers = [layer.name for layer in network.model._flatten_layers()]
    folded = fold_batchnorm(network.model)
    assert [layer.name for layer in network.model._flatten_layers()] == layers
    for old, new in zip(before, network.model.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())

    names = {layer.name for layer in folded.layers}
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    # The tower's shared conv gets one folded copy per level; the heads (no BN after them) stay shared.
    assert {f"tower_conv_0__tower_p{lvl}_bn_0" for lvl in range(3, 8)} <= names
    assert "tower_conv_0" not in names and {"box_head", "class_head"} <= names
    assert "Conv1__bn_Conv1" in names  # the backbone is inlined and folded too
    # The copy owns its weights: training the network further does not change the export.
    x = np.random.default_rng(0).uniform(-1, 1, (1, 192, 192, 3)).astype("float32")
    first = folded(x)[1].numpy()
    network.class_head.bias.assign(network.class_head.bias.numpy() + 1.0)
    np.testing.assert_array_equal(folded(x)[1].numpy(), first)


@pytest.mark.parametrize(
    "conv",
    [
        keras.layers.Conv2D(6, 3, padding="same", use_bias=False),
        keras.layers.Conv2D(6, 1, use_bias=True, groups=2),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False),
        keras.layers.SeparableConv2D(6, 3, strides=2, padding="same", use_bias=True),
    ],
    ids=["conv", "grouped_conv_with_bias", "depthwise_x2", "separable_with_bias"],
)
def test_a_folded_convolution_computes_batch_norm_of_the_convolution(conv):
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (2, 8, 8, 4)).astype("float32")
    norm = keras.layers.BatchNormalization(epsilon=0.01)
    c = norm(conv(x), training=False).shape[-1]  # builds both
    for variable in conv.weights:
        variable.assign(rng.normal(0, 1, variable.shape))
    norm.moving_mean.assign(rng.normal(0, 2, c))
    norm.moving_variance.assign(rng.uniform(0.01, 4, c))  # small variances: epsilon must be the layer's
    norm.gamma.assign(rng.normal(0, 2, c))
    norm.beta.assign(rng.normal(0, 2, c))
    reference = norm(conv(x), training=False).numpy()
    layer = folded_conv(conv, norm, "folded")
    assert layer.use_bias and layer.name == "folded"
    np.testing.assert_allclose(layer(x).numpy(), reference, rtol=1e-5, atol=1e-5)


def test_a_batch_norm_after_an_activation_or_a_conv_read_twice_stays_a_batch_norm():
    inputs = keras.Input((8, 8, 4))
    activated = keras.layers.BatchNormalization(name="after_relu")(keras.layers.Conv2D(4, 1, activation="relu")(inputs))
    shared = keras.layers.Conv2D(4, 1, name="read_twice")(inputs)
    twice = keras.layers.Add()([keras.layers.BatchNormalization(name="after_shared")(shared), shared])
    plain = keras.layers.BatchNormalization(name="after_conv")(keras.layers.Conv2D(4, 1, name="conv")(inputs))
    model = keras.Model(inputs, [activated, twice, plain])
    folded = fold_batchnorm(model)
    kept = {layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert kept == {"after_relu", "after_shared"}
    x = np.random.default_rng(1).normal(0, 1, (1, 8, 8, 4)).astype("float32")
    for got, want in zip(folded(x), model(x, training=False), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="conv_relu -> bn cannot be folded"):
        folded_conv(
            keras.layers.Conv2D(4, 1, activation="relu", name="conv_relu"),
            keras.layers.BatchNormalization(name="bn"),
            "x",
        )
