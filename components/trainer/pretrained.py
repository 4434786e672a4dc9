"""Starting points for training: a Model Zoo checkpoint, an ImageNet MobileNetV2 weights file, or nothing."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from detx.components.modeling import zoo_checkpoint
from detx.components.modeling.network import DetectorNetwork


def initializer(pretrained: str, scope: str, log: Callable[[str], None] = print) -> Callable[[DetectorNetwork], None]:
    """Returns a function that loads `pretrained` into a fresh network.

    Args:
        pretrained: a Model Zoo model directory, a `.h5` Keras MobileNetV2
            weights file (include_top=False, same alpha), or "" to train from scratch.
        scope: what a Zoo checkpoint restores (see modeling.config.RESTORE_SCOPES).
        log: where to say what was loaded.

    Raises:
        FileNotFoundError: the path does not exist.
    """

    def load(network: DetectorNetwork) -> None:
        if not pretrained:
            log("no pretrained weights: training from scratch")
            return
        if tf.io.gfile.isdir(pretrained):
            n = zoo_checkpoint.restore(network, zoo_checkpoint.checkpoint_prefix(pretrained), scope)
            log(f"restored {n} variables ({scope}) from the Model Zoo checkpoint in {pretrained}")
            return
        if not tf.io.gfile.exists(pretrained):
            raise FileNotFoundError(
                f"pretrained weights {pretrained} do not exist; give a Model Zoo model directory or a "
                "MobileNetV2 ImageNet weights file"
            )
        network.backbone.load_weights(pretrained)
        log(f"loaded ImageNet MobileNetV2 backbone weights from {pretrained}")

    return load
