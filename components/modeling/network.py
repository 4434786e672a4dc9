"""The SSD MobileNetV2-FPNLite network in Keras 3, wired as the Model Zoo's Keras feature extractor and predictor.

    image (normalized, square) -> MobileNetV2 -> C3 (block_5_add), C4 (block_12_add), C5 (out_relu)
    P5 = 1x1 conv(C5)                                  linear, with bias
    P4 = relu6(BN(sep3x3(up2(P5) + 1x1 conv(C4))))
    P3 = relu6(BN(sep3x3(up2(P4) + 1x1 conv(C3))))
    P6 = relu6(BN(sep3x3 stride 2(P5))),  P7 = relu6(BN(sep3x3 stride 2(P6)))
    each level: tower_layers x [shared sep3x3 -> BN of that level -> relu6]
    -> shared box head (A*4) and class head (A*(K+1)), concatenated over levels 3..7

The layer objects are kept on `DetectorNetwork` under the roles the Zoo's
checkpoint names them by, so `zoo_checkpoint.py` can map its keys to weights.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from detx.components.modeling.config import ModelConfig

_TAPS = ("block_5_add", "block_12_add", "out_relu")  # C3, C4, C5


def _relu6(name: str) -> keras.layers.Layer:
    return keras.layers.ReLU(6.0, name=name)


@dataclasses.dataclass
class DetectorNetwork:
    """The Keras model and its parts by role.

    Attributes:
        model: inputs [B, S, S, 3] normalized to [-1, 1]; outputs box codes
            [B, A, 4] and class logits [B, A, K + 1] (column 0 is background).
        backbone: the MobileNetV2 functional model.
        fpn_top: 1x1 projection of C5 (P5).
        fpn_projections: 1x1 projections of C4 and C3, in that order.
        fpn_smoothing: (separable conv, BN) of P4 and P3, in that order.
        coarse: (separable conv, BN) of P6 and P7.
        tower_convs: the shared tower's separable convs.
        tower_bns: per level (3..7), the tower's BN layers.
        box_head, class_head: the shared heads.
        regularized: weights that get L2 regularization.
        num_classes: foreground classes K.
    """

    model: keras.Model
    backbone: keras.Model
    fpn_top: keras.layers.Conv2D
    fpn_projections: list[keras.layers.Conv2D]
    fpn_smoothing: list[tuple[keras.layers.SeparableConv2D, keras.layers.BatchNormalization]]
    coarse: list[tuple[keras.layers.SeparableConv2D, keras.layers.BatchNormalization]]
    tower_convs: list[keras.layers.SeparableConv2D]
    tower_bns: list[list[keras.layers.BatchNormalization]]
    box_head: keras.layers.SeparableConv2D
    class_head: keras.layers.SeparableConv2D
    regularized: list[keras.Variable]
    num_classes: int

    def batch_norms(self) -> list[keras.layers.BatchNormalization]:
        """Every BN layer of the network."""
        return [layer for layer in self.model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def build_network(config: ModelConfig, num_classes: int, freeze_batchnorm: bool = False) -> DetectorNetwork:
    """Builds the detector for `num_classes` foreground classes.

    Args:
        config: architecture.
        num_classes: K; the class head predicts K + 1 columns.
        freeze_batchnorm: run every BN in inference mode (statistics fixed; gamma and beta trained).
    """
    if (config.min_level, config.max_level) != (3, 7):
        raise ValueError("the FPNLite feature extractor has levels 3..7")
    size, depth = config.image_size, config.fpn_depth
    normal = keras.initializers.RandomNormal(stddev=0.01)

    def bn(name: str) -> keras.layers.BatchNormalization:
        return keras.layers.BatchNormalization(momentum=config.bn_momentum, epsilon=config.bn_epsilon, name=name)

    def sep(
        name: str, filters: int, strides: int = 1, bias: bool = False, **kw: object
    ) -> keras.layers.SeparableConv2D:
        return keras.layers.SeparableConv2D(
            filters, 3, strides=strides, padding="same", use_bias=bias, depthwise_initializer=normal, name=name, **kw
        )

    inputs = keras.Input((size, size, 3), name="image")
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=config.alpha, include_top=False, weights=None
    )
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum, layer.epsilon = config.bn_momentum, config.bn_epsilon
    taps = keras.Model(backbone.inputs, [backbone.get_layer(n).output for n in _TAPS], name="mobilenet_v2_taps")
    c3, c4, c5 = taps(inputs)

    fpn_top = keras.layers.Conv2D(depth, 1, kernel_initializer=normal, name="fpn_projection_c5")
    fpn_projections = [
        keras.layers.Conv2D(depth, 1, kernel_initializer=normal, name=f"fpn_projection_c{lvl}") for lvl in (4, 3)
    ]
    fpn_smoothing = [(sep(f"fpn_smoothing_p{lvl}", depth), bn(f"fpn_smoothing_p{lvl}_bn")) for lvl in (4, 3)]
    coarse = [(sep(f"coarse_p{lvl}", depth, strides=2), bn(f"coarse_p{lvl}_bn")) for lvl in (6, 7)]

    p5 = fpn_top(c5)
    top = p5
    pyramid = {5: p5}
    for (conv, norm), projection, lateral, lvl in zip(fpn_smoothing, fpn_projections, (c4, c3), (4, 3), strict=True):
        merged = keras.layers.Add(name=f"fpn_merge_p{lvl}")(
            [keras.layers.UpSampling2D(2, interpolation="nearest", name=f"fpn_up_p{lvl}")(top), projection(lateral)]
        )
        top = _relu6(f"fpn_relu_p{lvl}")(norm(conv(merged)))
        pyramid[lvl] = top
    x = p5
    for (conv, norm), lvl in zip(coarse, (6, 7), strict=True):
        x = _relu6(f"coarse_relu_p{lvl}")(norm(conv(x)))
        pyramid[lvl] = x

    anchors = config.anchors_per_location
    tower_convs = [sep(f"tower_conv_{i}", depth) for i in range(config.tower_layers)]
    tower_bns = [[bn(f"tower_p{lvl}_bn_{i}") for i in range(config.tower_layers)] for lvl in range(3, 8)]
    box_head = keras.layers.SeparableConv2D(anchors * 4, 3, padding="same", name="box_head")
    class_head = keras.layers.SeparableConv2D(
        anchors * (num_classes + 1),
        3,
        padding="same",
        bias_initializer=keras.initializers.Constant(config.class_bias_init),
        name="class_head",
    )
    codes, logits = [], []
    for lvl, bns in zip(range(3, 8), tower_bns, strict=True):
        y = pyramid[lvl]
        for i, (conv, norm) in enumerate(zip(tower_convs, bns, strict=True)):
            y = _relu6(f"tower_p{lvl}_relu_{i}")(norm(conv(y)))
        codes.append(keras.layers.Reshape((-1, 4), name=f"box_codes_p{lvl}")(box_head(y)))
        logits.append(keras.layers.Reshape((-1, num_classes + 1), name=f"class_logits_p{lvl}")(class_head(y)))
    box_codes = keras.layers.Concatenate(axis=1, name="box_codes", dtype="float32")(codes)
    class_logits = keras.layers.Concatenate(axis=1, name="class_logits", dtype="float32")(logits)
    model = keras.Model(inputs, [box_codes, class_logits], name="ssd_mobilenet_v2_fpnlite")

    regularized: list[keras.Variable] = []
    for layer in backbone.layers:
        # Keras 3 names a DepthwiseConv2D's weight `kernel` (TF Keras 2 said `depthwise_kernel`).
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            regularized.append(layer.kernel)
    regularized += [fpn_top.kernel] + [p.kernel for p in fpn_projections]
    regularized += [c.depthwise_kernel for c, _ in fpn_smoothing + coarse] + [c.depthwise_kernel for c in tower_convs]

    network = DetectorNetwork(
        model=model,
        backbone=backbone,
        fpn_top=fpn_top,
        fpn_projections=fpn_projections,
        fpn_smoothing=fpn_smoothing,
        coarse=coarse,
        tower_convs=tower_convs,
        tower_bns=tower_bns,
        box_head=box_head,
        class_head=class_head,
        regularized=regularized,
        num_classes=num_classes,
    )
    if freeze_batchnorm:
        for layer in network.batch_norms():
            _freeze_statistics(layer)
    return network


def class_head_columns(anchors_per_location: int, num_classes: int) -> np.ndarray:
    """The class head's output channel of each (anchor, column): int [anchors, K + 1].

    The class head emits A * (K + 1) channels per cell and `class_logits_p*` reshapes
    them to [cells * A, K + 1], so anchor a's column c (0 background, 1..K the label ids)
    is channel a * (K + 1) + c. Worked example: with 6 anchors and 3 classes, label 2 of
    anchor 1 is channel 1 * 4 + 2 = 6; with a 4th class appended it moves to 1 * 5 + 2 = 7.
    """
    return np.arange(anchors_per_location * (num_classes + 1)).reshape(anchors_per_location, num_classes + 1)


def _freeze_statistics(layer: keras.layers.BatchNormalization) -> None:
    """BN in inference mode (moving statistics used, never updated) with gamma and beta still trained.

    This is the OD API's freeze_batchnorm (FreezableBatchNorm with training=False): the
    statistics of tiny batches are too noisy to normalize with or to learn from, but the
    scales and offsets still adapt. Keras' `trainable = False` would also freeze gamma and beta.
    """
    call = layer.call

    def frozen(inputs: tf.Tensor, training: bool | None = None, mask: tf.Tensor | None = None) -> tf.Tensor:
        return call(inputs, training=False, mask=mask)

    layer.call = frozen


def l2_loss(network: DetectorNetwork, weight: float) -> tf.Tensor:
    """Keras-style L2 regularization (weight * sum of squares) over the regularized weights."""
    return weight * tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in network.regularized])
