"""Model Zoo checkpoints: restore `ckpt-0` of SSD MobileNetV2-FPNLite 320 by its variable keys.

The Zoo's TF2 checkpoint is object-based; its keys are paths through the OD
API's Python objects, e.g.
`model/_feature_extractor/classification_backbone/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`.
`zoo_variable_map` names, for each such key, the Keras weight of detx's
network that plays the same role, so a restore is a checked copy: every key
the chosen scope needs must be present with the same shape, or nothing is
loaded and the error lists what did not fit.

Scopes, as the Zoo's fine-tune types:
- "detection": backbone, FPN and the two extra levels (the Zoo's own
  "detection" type; the box predictor starts fresh);
- "detection+box": also the shared prediction tower (convs and per-level BNs)
  and the box head, as the Zoo's few-shot Colab restores them;
- "full": everything, class head included (only with the same class count, 90 for COCO).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import keras
import tensorflow as tf

from detx.components.modeling.config import RESTORE_SCOPES
from detx.components.modeling.network import DetectorNetwork

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_FE = "model/_feature_extractor"
_BP = "model/_box_predictor"
_BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the network: keys missing or shapes different."""


def _bn(prefix: str, layer: keras.layers.BatchNormalization) -> dict[str, keras.Variable]:
    return {f"{prefix}/{name}{_SUFFIX}": getattr(layer, name) for name in _BN_WEIGHTS}


def _sep(prefix: str, layer: keras.layers.SeparableConv2D, bias: bool = False) -> dict[str, keras.Variable]:
    out = {
        f"{prefix}/depthwise_kernel{_SUFFIX}": layer.depthwise_kernel,
        f"{prefix}/pointwise_kernel{_SUFFIX}": layer.pointwise_kernel,
    }
    if bias:
        out[f"{prefix}/bias{_SUFFIX}"] = layer.bias
    return out


def _conv(prefix: str, layer: keras.layers.Conv2D) -> dict[str, keras.Variable]:
    return {f"{prefix}/kernel{_SUFFIX}": layer.kernel, f"{prefix}/bias{_SUFFIX}": layer.bias}


def zoo_variable_map(network: DetectorNetwork, scope: str = "full") -> dict[str, keras.Variable]:
    """Zoo checkpoint key to detx weight, for the parts `scope` covers.

    The backbone's keys number the Keras MobileNetV2's layers that own
    weights, in layer order (`layer_with_weights-N`); detx builds the same
    Keras application, so the numbering carries over.
    """
    if scope not in RESTORE_SCOPES:
        raise ValueError(f"unknown restore scope {scope!r}; choose one of {', '.join(RESTORE_SCOPES)}")
    out: dict[str, keras.Variable] = {}
    weighted = [layer for layer in network.backbone.layers if layer.weights]
    for n, layer in enumerate(weighted):
        base = f"{_FE}/classification_backbone/layer_with_weights-{n}"
        if isinstance(layer, keras.layers.BatchNormalization):
            out.update(_bn(base, layer))
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            # TF Keras 2 called it depthwise_kernel; Keras 3 calls it kernel.
            out[f"{base}/depthwise_kernel{_SUFFIX}"] = layer.kernel
        else:
            out[f"{base}/kernel{_SUFFIX}"] = layer.kernel
    fpn = f"{_FE}/_fpn_features_generator"
    out.update(_conv(f"{fpn}/top_layers/0", network.fpn_top))
    for i, projection in enumerate(network.fpn_projections):
        out.update(_conv(f"{fpn}/residual_blocks/{i}/0", projection))
    for i, (conv, norm) in enumerate(network.fpn_smoothing):
        out.update(_sep(f"{fpn}/conv_layers/{i}/0", conv))
        out.update(_bn(f"{fpn}/conv_layers/{i}/1", norm))
    for i, (conv, norm) in enumerate(network.coarse):
        out.update(_sep(f"{_FE}/_coarse_feature_layers/{i}/0", conv))
        out.update(_bn(f"{_FE}/_coarse_feature_layers/{i}/1", norm))
    if scope == "detection":
        return out
    for i, conv in enumerate(network.tower_convs):
        out.update(_sep(f"{_BP}/_head_scope_conv_layers/PredictionTower/{i}", conv))
    for level, bns in enumerate(network.tower_bns):
        for i, norm in enumerate(bns):
            # The per-level list is [conv, bn, act] * layers: BN i sits at 3i + 1.
            out.update(_bn(f"{_BP}/_base_tower_layers_for_heads/box_encodings/{level}/{3 * i + 1}", norm))
    out.update(_sep(f"{_BP}/_box_prediction_head/_box_encoder_layers/0", network.box_head, bias=True))
    if scope == "detection+box":
        return out
    head = f"{_BP}/_prediction_heads/class_predictions_with_background/_class_predictor_layers/0"
    out.update(_sep(head, network.class_head, bias=True))
    return out


def checkpoint_prefix(model_dir: str) -> str:
    """The checkpoint of a Model Zoo model directory (`pipeline.config` + `checkpoint/ckpt-0`).

    Raises:
        FileNotFoundError: the directory does not look like a Zoo model.
    """
    ckpt_dir = os.path.join(model_dir, "checkpoint")
    latest = tf.train.latest_checkpoint(ckpt_dir)
    prefix = latest or os.path.join(ckpt_dir, "ckpt-0")
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(
            f"{model_dir} is not a Model Zoo model directory: no {prefix}.index. Download and unpack "
            "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.tar.gz and pass the folder that holds "
            "pipeline.config and checkpoint/"
        )
    return prefix


def restore(network: DetectorNetwork, prefix: str, scope: str = "detection") -> int:
    """Copies the checkpoint's values into the network for `scope`; returns how many variables.

    Raises:
        CheckpointMismatchError: any needed key is missing or has another shape;
            nothing has been changed then.
    """
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    wanted = zoo_variable_map(network, scope)
    missing = sorted(k for k in wanted if k not in shapes)
    mismatched = sorted(
        f"{k}: checkpoint {shapes[k]}, model {list(v.shape)}"
        for k, v in wanted.items()
        if k in shapes and list(shapes[k]) != list(v.shape)
    )
    if missing or mismatched:
        lines = [f"checkpoint {prefix} does not fit the network for scope {scope!r}:"]
        if missing:
            lines.append(f"{len(missing)} key(s) missing:")
            lines += [f"  {k}" for k in missing]
        if mismatched:
            lines.append(f"{len(mismatched)} key(s) with another shape:")
            lines += [f"  {m}" for m in mismatched]
        lines.append(
            "Use the SSD MobileNetV2 FPNLite 320x320 checkpoint with the zoo320 preset (alpha 1.0, depth 128), "
            "and scope 'detection' unless the class count matches."
        )
        raise CheckpointMismatchError("\n".join(lines))
    for key, variable in wanted.items():
        variable.assign(reader.get_tensor(key))
    return len(wanted)


def write_zoo_layout_checkpoint(network: DetectorNetwork, prefix: str) -> str:
    """Saves the network's weights under the Zoo's keys (every scope), as `tf.train.Checkpoint` would.

    Pretrained Zoo weights cannot be downloaded here, so tests and demos use
    this to produce a checkpoint with exactly the Zoo's key layout.

    Returns:
        The written checkpoint path.
    """
    root = tf.Module()
    for key, variable in zoo_variable_map(network, "full").items():
        path = key.removesuffix(_SUFFIX).split("/")
        node = root
        for part in path[1:-1]:
            child = getattr(node, part, None)
            if child is None:
                child = tf.Module()
                setattr(node, part, child)
            node = child
        setattr(node, path[-1], tf.Variable(variable.numpy(), name=path[-1]))
    return tf.train.Checkpoint(model=root).write(prefix)


def shapes_in(prefix: str) -> Mapping[str, list[int]]:
    """Key to shape of every variable in a checkpoint (object graph and counters included)."""
    return tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
