"""The training network's weights, kept inside the exported model so a served version can be trained further.

The served graph has its batch norms folded into the convolutions
(`modeling/fold.py`): no BN layer, no moving statistics, kernels rescaled. It
cannot be trained on. So `run_fn` also writes the network as trained, every
Keras weight (BN moving statistics included, optimizer state not), as a
TensorFlow checkpoint under the SavedModel's `assets.extra/`, where TF Serving
reads nothing but its warm-up file (tensorflow/serving
saved_model_warmup_util.cc; see `model_card/facts.py`). The InfraValidator and
the Pusher copy the whole model directory, so every pushed version carries it.

    <model>/assets.extra/detx_training_weights/weights.index
    <model>/assets.extra/detx_training_weights/weights.data-00000-of-00001
    <model>/assets.extra/detx_training_weights/weights.json   (written last: the weights are complete when it exists)

The checkpoint is TensorFlow's V2 format written by its own `SaveV2` op, keyed
by Keras weight path (`Conv1/kernel`, `class_head/bias`), so
`tf.train.list_variables` lists it and a mismatch names the weight; nothing
depends on how Keras tracks its objects.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from detx.components.modeling.config import ModelConfig
from detx.components.modeling.network import DetectorNetwork

WEIGHTS_DIR = "assets.extra/detx_training_weights"
_PREFIX = "weights"
_MANIFEST = "weights.json"
FORMAT = 1


class WarmStartError(ValueError):
    """A model cannot be trained further from; the message names the problem and the way out."""


@dataclasses.dataclass(frozen=True)
class TrainingWeights:
    """The weights a model was exported from.

    Attributes:
        values: Keras weight path to value.
        model_config: the `ModelConfig` fields the network was built with.
        num_classes: foreground classes K of its class head.
    """

    values: dict[str, np.ndarray]
    model_config: dict[str, Any]
    num_classes: int


def _dir(model_dir: str) -> str:
    return os.path.join(model_dir, WEIGHTS_DIR)


def exists(model_dir: str) -> bool:
    """Whether `model_dir` holds complete training weights."""
    return bool(tf.io.gfile.exists(os.path.join(_dir(model_dir), _MANIFEST)))


def write(network: DetectorNetwork, model_config: ModelConfig, model_dir: str) -> str:
    """Writes the network's weights into an exported model; returns their folder.

    Raises:
        RuntimeError: two weights share a path (the keys would collide).
    """
    weights = network.model.weights
    keys = [v.path for v in weights]
    if len(set(keys)) != len(keys):
        raise RuntimeError("two weights of the network share a path; the checkpoint keys would collide")
    folder = _dir(model_dir)
    tf.io.gfile.makedirs(folder)
    tf.raw_ops.SaveV2(
        prefix=os.path.join(folder, _PREFIX),
        tensor_names=keys,
        shape_and_slices=[""] * len(keys),
        tensors=[tf.convert_to_tensor(v) for v in weights],
    )
    manifest = {
        "format": FORMAT,
        "model_config": dataclasses.asdict(model_config),
        "num_classes": network.num_classes,
        "variables": len(keys),
    }
    with tf.io.gfile.GFile(os.path.join(folder, _MANIFEST), "w") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True))
    return folder


def read(model_dir: str) -> TrainingWeights:
    """Reads the training weights of an exported model.

    Raises:
        WarmStartError: the model has none, or they are unreadable.
    """
    folder = _dir(model_dir)
    if not exists(model_dir):
        raise WarmStartError(
            f"{model_dir} has no training weights ({WEIGHTS_DIR}/{_MANIFEST}): it was exported by another tool or "
            "before detx kept them, so it cannot be trained further; start from a Model Zoo checkpoint or from "
            "scratch (--pretrained PATH or '')"
        )
    with tf.io.gfile.GFile(os.path.join(folder, _MANIFEST)) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT:
        raise WarmStartError(
            f"{folder} holds training weights in format {manifest.get('format')!r}; this detx reads format {FORMAT}"
        )
    try:
        reader = tf.train.load_checkpoint(os.path.join(folder, _PREFIX))
    except (tf.errors.OpError, ValueError) as e:
        raise WarmStartError(f"cannot read the training weights in {folder}: {e}") from e
    values = {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}
    return TrainingWeights(values, dict(manifest["model_config"]), int(manifest["num_classes"]))


def size_bytes(model_dir: str) -> int:
    """Bytes the training weights add to a model."""
    folder = _dir(model_dir)
    return sum(tf.io.gfile.stat(os.path.join(folder, name)).length for name in tf.io.gfile.listdir(folder))
