"""Batch normalization folded into the preceding convolution, for the exported inference graph only.

In inference mode a BN after a linear convolution is an affine map per output channel:

    y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta
      = conv_with(kernel * s)(x) + (b - mean) * s + beta,   s = gamma / sqrt(var + eps)

so the pair becomes one convolution with a scaled kernel and a bias, exact up to
float rounding. Keras 3 runs each BN as seven separate ops (Rsqrt, 3 Mul, Sub,
2 AddV2; a multiply and an add over the whole feature map), where the Zoo's TF1
graph had one fused op (shared/reference/model_zoo_ssd.md section 5); folding
leaves one BiasAdd.

The fold works on call sites (Keras nodes), not on layers: the box predictor's
tower applies one shared separable conv at five levels, each followed by its own
BN, so each level gets its own folded copy of that conv. Training never sees any
of this: `fold_batchnorm` returns a new model and leaves the given one untouched.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of a functional model in which every convolution followed only by a BN absorbs it.

    The copy is flat (nested functional models, such as the backbone's taps, are
    inlined), holds copies of the weights taken now, and computes what `model(x,
    training=False)` does. A BN that follows anything else stays a BN.

    Example: `Conv2D(use_bias=False) -> BatchNormalization -> ReLU` becomes
    `Conv2D(use_bias=True) -> ReLU`, the kernel scaled per output channel by
    gamma / sqrt(moving_variance + epsilon) and the bias beta - moving_mean * that scale.

    Args:
        model: a Keras functional model (the detector's `DetectorNetwork.model`).

    Returns:
        The inference model, with the same inputs and outputs.
    """
    inputs = [keras.Input(shape=x.shape[1:], dtype=x.dtype, name=x.name) for x in model.inputs]
    outputs = _Inliner().run(model, inputs)
    structure = keras.tree.pack_sequence_as(model._outputs_struct, outputs)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], structure, name=f"{model.name}_folded")


def scale_and_shift(norm: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """The BN's inference map as x * scale + shift per channel, in float64 so folding adds no rounding of its own."""
    variance = np.asarray(norm.moving_variance.numpy(), np.float64)
    gamma = np.asarray(norm.gamma.numpy(), np.float64) if norm.scale else np.ones_like(variance)
    beta = np.asarray(norm.beta.numpy(), np.float64) if norm.center else np.zeros_like(variance)
    scale = gamma / np.sqrt(variance + norm.epsilon)
    return scale, beta - np.asarray(norm.moving_mean.numpy(), np.float64) * scale


def folded_conv(conv: keras.layers.Layer, norm: keras.layers.BatchNormalization, name: str) -> keras.layers.Layer:
    """A built copy of `conv` with a bias, whose output equals `norm(conv(x))` in inference mode.

    Raises:
        ValueError: the pair cannot be folded (see `_foldable`).
    """
    if not _foldable(conv, norm):
        raise ValueError(f"{conv.name} -> {norm.name} cannot be folded")
    scale, shift = scale_and_shift(norm)
    config = dict(conv.get_config(), name=name, use_bias=True)
    layer = type(conv).from_config(config)
    layer.build((None, None, None, _in_channels(conv)))
    bias = np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias else np.zeros_like(scale)
    new_bias = bias * scale + shift
    if isinstance(conv, keras.layers.SeparableConv2D):
        # The BN's channels are the pointwise kernel's outputs (its last axis).
        pointwise = np.asarray(conv.pointwise_kernel.numpy(), np.float64) * scale
        weights = [conv.depthwise_kernel.numpy(), pointwise, new_bias]
    elif isinstance(conv, keras.layers.DepthwiseConv2D):
        # Output channel c = i * multiplier + m comes from kernel[..., i, m].
        kernel = np.asarray(conv.kernel.numpy(), np.float64)
        weights = [kernel * scale.reshape(kernel.shape[2:]), new_bias]
    else:
        weights = [np.asarray(conv.kernel.numpy(), np.float64) * scale, new_bias]
    layer.set_weights([w.astype(v.dtype) for w, v in zip(weights, layer.weights, strict=True)])
    return layer


def _foldable(conv: keras.layers.Layer, norm: keras.layers.BatchNormalization) -> bool:
    """Whether BN(conv(x)) is one convolution: conv linear, channels last, BN over the last axis and not renormed."""
    config = conv.get_config()
    axis = norm.axis if isinstance(norm.axis, int) else None
    return (
        isinstance(conv, _CONVS)
        and config.get("activation") == "linear"
        and config.get("data_format", "channels_last") == "channels_last"
        and axis in (-1, 3)
        and not norm.renorm
    )


def _in_channels(conv: keras.layers.Layer) -> int:
    kernel = conv.depthwise_kernel if isinstance(conv, keras.layers.SeparableConv2D) else conv.kernel
    # Conv2D [h, w, in / groups, out]; Depthwise and separable [h, w, in, multiplier].
    groups = conv.get_config().get("groups", 1) if type(conv) is keras.layers.Conv2D else 1
    return int(kernel.shape[2]) * groups


class _Inliner:
    """Re-runs a functional model's graph on new symbolic inputs, with copies of its layers.

    Layers are copied once (so weight sharing is kept), except convolutions that absorb
    a BN: those are copied once per call site, because each site folds a different BN.
    """

    def __init__(self) -> None:
        self._copies: dict[int, keras.layers.Layer] = {}
        self._names: set[str] = set()
        self._loaded: set[int] = set()

    def run(self, model: Any, inputs: list[Any]) -> list[Any]:
        """The outputs of `model`'s graph (flattened) applied to `inputs`."""
        tensors: dict[int, Any] = {id(x): y for x, y in zip(model.inputs, inputs, strict=True)}
        pairs = self._pairs(model)
        absorbed = {id(norm_node) for norm_node in pairs.values()}
        for depth in sorted(model._nodes_by_depth, reverse=True):  # inputs first, as Keras runs it
            for node in model._nodes_by_depth[depth]:
                if node.is_input or node.operation is None or id(node) in absorbed:
                    continue
                args, kwargs = node.arguments.fill_in(tensors)
                op = node.operation
                if isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth"):
                    results = self.run(op, keras.tree.flatten(args))
                elif id(node) in pairs:
                    norm_node = pairs[id(node)]
                    layer = self._unique(folded_conv(op, norm_node.operation, f"{op.name}__{norm_node.operation.name}"))
                    results = keras.tree.flatten(layer(*args, **kwargs))
                    tensors[id(norm_node.outputs[0])] = results[0]
                    continue
                else:
                    copy = self._copy(op)
                    results = keras.tree.flatten(copy(*args, **kwargs))
                    if id(copy) not in self._loaded:
                        # The copy's weights exist once this first call has built it.
                        copy.set_weights(op.get_weights())
                        self._loaded.add(id(copy))
                for x, y in zip(node.outputs, results, strict=True):
                    tensors[id(x)] = y
        return [tensors[id(x)] for x in model.outputs]

    def _pairs(self, model: Any) -> dict[int, Any]:
        """Conv node id -> the BN node that alone reads its output, for every foldable pair."""
        readers: dict[int, list[Any]] = {}
        for nodes in model._nodes_by_depth.values():
            for node in nodes:
                for x in node.input_tensors:
                    readers.setdefault(id(x), []).append(node)
        outputs = {id(x) for x in model.outputs}
        pairs = {}
        for nodes in model._nodes_by_depth.values():
            for node in nodes:
                if not isinstance(node.operation, _CONVS) or len(node.outputs) != 1:
                    continue
                out = id(node.outputs[0])
                after = readers.get(out, [])
                if out in outputs or len(after) != 1:
                    continue
                (norm_node,) = after
                norm = norm_node.operation
                # Only a plain call norm(x): a mask or an explicit training flag would change its meaning.
                kwargs = norm_node.arguments.kwargs
                plain = len(norm_node.arguments.args) == 1 and all(v is None for v in kwargs.values())
                if isinstance(norm, keras.layers.BatchNormalization) and plain and _foldable(node.operation, norm):
                    pairs[id(node)] = norm_node
        return pairs

    def _copy(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        """The layer's one copy (from its config; weights are set after its first call builds it)."""
        if id(layer) not in self._copies:
            self._copies[id(layer)] = self._unique(type(layer).from_config(layer.get_config()))
        return self._copies[id(layer)]

    def _unique(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer.name in self._names:
            raise ValueError(f"two layers named {layer.name} in the folded model")
        self._names.add(layer.name)
        return layer
