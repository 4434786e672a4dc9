"""A rebuilt detector to TFLite: float32, float16, or full-integer int8 calibrated on a representative sample.

The converted graph is what the OD API's TF2 TFLite export builds
(research/object_detection/export_tflite_graph_lib_tf2.py): one image
[1, S, S, 3] normalized to [-1, 1] -> the network -> sigmoid scores ->
`TFLite_Detection_PostProcess` (postprocess_op.py) with the anchors as a
constant input. Resizing and normalizing are left to the app, as TFLite's Task
Library and the Coral/MediaPipe samples expect; the metadata (metadata.py) tells
them the mean and std.

int8 is full-integer quantization: `tf.lite.Optimize.DEFAULT` with a
representative dataset and only `TFLITE_BUILTINS_INT8` ops, the input taken as
uint8 pixels (the quantized [-1, 1], so raw 0..255 values). The post-processing
op stays in float: the converter dequantizes its inputs.

The network is frozen (its weights made constants) before conversion: TF 2.16's
converter aborts the whole process on Keras 3 variables ("missing attribute
'value'", tensorflow/tensorflow#63987), and freezing the network alone keeps
the post-processing function, which freezing the whole graph would inline away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from detx.components.modeling import anchors as anchor_lib
from detx.components.tflite.options import FLOAT16, INT8, KINDS
from detx.components.tflite.postprocess_op import (
    OUTPUTS,
    PostProcessSettings,
    center_size_anchors,
    postprocess_function,
    with_op_attributes,
)
from detx.components.tflite.source import Detector


class ConversionError(RuntimeError):
    """The TFLite converter refused the model; the message says which model and why."""


class TFLiteGraph(tf.Module):
    """The graph TFLite converts: network, sigmoid, the post-processing op with constant anchors."""

    def __init__(self, network: Callable[..., Any], image_size: int, anchors: np.ndarray, op: Callable[..., Any]):
        super().__init__(name="detx_tflite_detector")
        self._network, self._anchors, self._op = network, anchors, op
        self.image_size = image_size

    def signature(self) -> Any:
        """The concrete function of one [1, S, S, 3] float32 image named `image`."""
        size = self.image_size

        @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="image")])
        def detect(image: tf.Tensor) -> dict[str, tf.Tensor]:
            codes, logits = self._network(image)
            # The op wants scores, not logits: the sigmoid runs before it, as in the OD API's export.
            outputs = self._op(codes, tf.sigmoid(logits), tf.constant(self._anchors))
            return dict(zip(OUTPUTS, outputs, strict=True))

        return detect.get_concrete_function()


def tflite_graph(detector: Detector, settings: PostProcessSettings) -> tuple[TFLiteGraph, Any]:
    """The module and concrete function handed to the converter."""
    size = detector.config.image_size
    network = tf.function(lambda image: detector.model(image, training=False)).get_concrete_function(
        tf.TensorSpec([1, size, size, 3], tf.float32)
    )
    anchors = center_size_anchors(anchor_lib.generate(detector.config))
    graph = TFLiteGraph(convert_variables_to_constants_v2(network), size, anchors, postprocess_function(settings))
    return graph, graph.signature()


def convert(
    detector: Detector,
    kind: str,
    settings: PostProcessSettings,
    representative: np.ndarray | None = None,
) -> bytes:
    """One TFLite flatbuffer (without metadata: see metadata.py).

    Args:
        detector: the rebuilt detector.
        kind: "float32", "float16" or "int8".
        settings: the post-processing op's attributes.
        representative: int8 only: network inputs [n, S, S, 3] to calibrate on.

    Raises:
        ValueError: an unknown kind, or int8 without a representative sample.
        ConversionError: the converter failed.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown TFLite model kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == INT8 and (representative is None or not len(representative)):
        raise ValueError("int8 conversion needs a representative sample of images to calibrate on")
    graph, function = tflite_graph(detector, settings)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], graph)
    converter.allow_custom_ops = True  # TFLite_Detection_PostProcess is a custom op every TFLite runtime ships
    if kind == FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == INT8:
        sample = np.asarray(representative, np.float32)

        def calibration() -> Iterator[list[np.ndarray]]:
            for image in sample:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    try:
        converted = bytes(converter.convert())
        return with_op_attributes(converted, settings)
    except Exception as e:  # the converter raises ConverterError, ValueError or RuntimeError
        raise ConversionError(
            f"converting {detector.path} to a {kind} TFLite model failed: {converter_message(e)}. Nothing was "
            "written; check that the model was exported by this version of detx, or report the message"
        ) from e


def converter_message(error: BaseException) -> str:
    """The converter's own words: its `error:` lines without MLIR's source locations, else the first line."""
    found: list[str] = []
    for line in str(error).splitlines():
        if "error: " in line:
            text = line.split("error: ", 1)[1].strip().rstrip(":").strip()
            if text and text not in found:
                found.append(text)
    if found:
        return "; ".join(found)
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
