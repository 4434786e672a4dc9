import dataclasses

import keras
import numpy as np
import pytest

from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer.options import TrainerOptions
from detx.components.trainer.pretrained import initializer

MODEL, _ = preset("tiny")


def test_imagenet_weights_file_loads_into_the_backbone(tmp_path):
    size = MODEL.image_size
    imagenet = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=MODEL.alpha, include_top=False, weights=None
    )
    path = str(tmp_path / "mobilenet_v2.weights.h5")
    imagenet.save_weights(path)
    network = build_network(MODEL, 3)
    messages = []
    initializer(path, "detection", log=messages.append)(network)
    np.testing.assert_array_equal(network.backbone.get_layer("Conv1").kernel, imagenet.get_layer("Conv1").kernel)
    assert "loaded ImageNet MobileNetV2 backbone weights" in messages[0]


def test_no_weights_and_missing_weights(tmp_path):
    messages = []
    initializer("", "detection", log=messages.append)(build_network(MODEL, 3))
    assert messages == ["no pretrained weights: training from scratch"]
    with pytest.raises(FileNotFoundError, match="do not exist"):
        initializer(str(tmp_path / "nope.h5"), "detection")(build_network(MODEL, 3))


def test_trainer_options_round_trip_and_overrides():
    options = TrainerOptions(preset="tiny", batch_size=8, seed=3, checkpoint_every=50, pretrained="/zoo/ssd")
    assert "pretrained" not in options.to_custom_config()  # a run parameter: its own exec property
    assert TrainerOptions.from_custom_config(options.to_custom_config(), pretrained="/zoo/ssd") == options
    with pytest.raises(ValueError, match="must not carry the run setting"):
        TrainerOptions.from_custom_config({"preset": "tiny", "pretrained": "/old"}, pretrained="/zoo/ssd")
    _, train = options.configs(train_steps=120)
    assert (train.batch_size, train.train_steps, train.seed, train.checkpoint_every) == (8, 120, 3, 50)
    assert dataclasses.replace(options, checkpoint_every=0).configs(train_steps=10)[1].checkpoint_every == 10
    with pytest.raises(ValueError, match="unknown preset"):
        TrainerOptions(preset="big")
    with pytest.raises(ValueError, match="unknown restore scope"):
        TrainerOptions(restore_scope="all")
