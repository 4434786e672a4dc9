"""TFLite's detection post-processing op (`TFLite_Detection_PostProcess`) with detx's own NMS settings.

TensorFlow has no op for it. As the Object Detection API's TF2 TFLite export
does (research/object_detection/export_tflite_graph_lib_tf2.py), the graph calls
an empty tf.function whose `experimental_implements` attribute names the op and
carries its settings; the TFLite converter replaces the call with the custom op.
The op (tensorflow/lite/kernels/detection_postprocess.cc) takes:

- box encodings [1, A, 4] (ty, tx, th, tw), decoded against the anchors with the
  Faster R-CNN box coder's scales, as `modeling/box_coder.decode` does;
- class scores [1, A, K + 1] after the sigmoid, background in column 0 (the
  kernel skips the extra column: its `label_offset` is 1);
- anchors [A, 4] in center-size form (ycenter, xcenter, height, width);

and returns, in this order, boxes [1, N, 4] (ymin, xmin, ymax, xmax, normalized),
classes [1, N] (0-based: label id - 1), scores [1, N] and the count [1]: the order
TFLite's Task Library ObjectDetector and the Coral/MediaPipe samples read.

Where detx's post-processing (`modeling/postprocess.py`) and the op differ, and why:

- NMS. Both run per-class NMS by default (`use_regular_nms=True`), with
  detx's thresholds, so a float32 model detects as the SavedModel does. But
  the op's multi-threaded path never processes class index T when the
  interpreter runs with T >= 2 threads and there are more than T classes: the
  worker tasks start at columns 0..T-1, then take `++next_col` from T, i.e.
  T + 1 (tensorflow/lite/kernels/detection_postprocess.cc,
  NonMaxSuppressionWorkerTask; still so in LiteRT's
  tflite/kernels/detection_postprocess.cc; tensorflow/tensorflow#56058).
  Measured here: a 3-class model run with 2 threads never reports class 3.
  detx kfp runs such models with one thread (interpreter.py); an app must too, or
  use the op's class-agnostic "fast" NMS (`use_regular_nms=False`, the OD API
  export's default: each anchor keeps its best class, one NMS over all
  anchors), which any thread count runs right but which scores lower
  (docs/benchmarks.md).
- The op neither clips boxes to the image nor drops boxes left with no area after
  clipping; detx does both after NMS. `interpreter.py` does both on the op's
  output, so detx's own TFLite results (evaluation, `detx predict --tflite`) mean
  what the SavedModel's do; an app reading the raw outputs may get a box that
  sticks out of the image a little.
- The op keeps scores `>= nms_score_threshold`; TensorFlow's NMS keeps `>`.
- TF 2.16's converter drops `detections_per_class` from the op's attributes (it
  knows the OD API's list only), so `with_op_attributes` writes the op's whole
  attribute map again after conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flatbuffers  # type: ignore[import-untyped]
import numpy as np
import tensorflow as tf
from flatbuffers import flexbuffers
from google.protobuf import text_format
from tensorflow.core.framework import attr_value_pb2
from tensorflow.lite.python import schema_py_generated as schema

from detx.components.modeling.config import ModelConfig

OP_NAME = "TFLite_Detection_PostProcess"
MODEL_IDENTIFIER = b"TFL3"  # the TFLite schema's file identifier
# The op's outputs, in its own order (kOutputTensorDetectionBoxes = 0 ... kOutputTensorNumDetections = 3).
OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")


@dataclasses.dataclass(frozen=True)
class PostProcessSettings:
    """The op's attributes.

    Attributes:
        max_detections: detections returned (N).
        detections_per_class: per-class NMS keeps at most this many per class.
        score_threshold: anchors scoring below this are not candidates.
        iou_threshold: a box overlapping a kept one of its class by more than this is dropped.
        num_classes: K, foreground classes.
        box_code_scales: the box coder's (y, x, h, w) scales.
        use_regular_nms: per-class NMS, as detx's (run it with one thread: see the module doc); False: the op's
            class-agnostic fast NMS.
    """

    max_detections: int
    detections_per_class: int
    score_threshold: float
    iou_threshold: float
    num_classes: int
    box_code_scales: tuple[float, float, float, float]
    use_regular_nms: bool = True

    @classmethod
    def from_config(cls, config: ModelConfig, num_classes: int, use_regular_nms: bool = True) -> PostProcessSettings:
        """Detx's own NMS settings (`ModelConfig`), as the op can express them."""
        return cls(
            max_detections=config.max_detections,
            detections_per_class=config.max_detections_per_class,
            score_threshold=config.score_threshold,
            iou_threshold=config.iou_threshold,
            num_classes=num_classes,
            box_code_scales=config.box_code_scales,
            use_regular_nms=use_regular_nms,
        )

    def attributes(self) -> dict[str, int | float | bool]:
        """The op's attribute map (detection_postprocess.cc reads these names from its flexbuffer)."""
        scales = dict(zip(("y_scale", "x_scale", "h_scale", "w_scale"), self.box_code_scales, strict=True))
        return {
            "max_detections": int(self.max_detections),
            # The fast NMS reports one class per box; regular NMS ignores this attribute.
            "max_classes_per_detection": 1,
            "detections_per_class": int(self.detections_per_class),
            "num_classes": int(self.num_classes),
            "nms_score_threshold": float(self.score_threshold),
            "nms_iou_threshold": float(self.iou_threshold),
            **{k: float(v) for k, v in scales.items()},
            "use_regular_nms": bool(self.use_regular_nms),
        }

    def implements_signature(self) -> str:
        """The `experimental_implements` text: a NameAttrList naming the op, with its attributes."""
        signature = attr_value_pb2.NameAttrList(name=OP_NAME)
        for key, value in self.attributes().items():
            if isinstance(value, bool):
                signature.attr[key].b = value
            elif isinstance(value, int):
                signature.attr[key].i = value
            else:
                signature.attr[key].f = value
        return str(text_format.MessageToString(signature, as_one_line=True))


def center_size_anchors(anchors: np.ndarray) -> np.ndarray:
    """Corner anchors [A, 4] (ymin, xmin, ymax, xmax) to the op's (ycenter, xcenter, height, width)."""
    ymin, xmin, ymax, xmax = (anchors[:, i].astype(np.float64) for i in range(4))
    return np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin], axis=1).astype(np.float32)


def postprocess_function(settings: PostProcessSettings) -> Callable[..., Any]:
    """The tf.function the converter turns into the op: (box encodings, scores, anchors) -> its four outputs.

    Its body is a placeholder that never runs on a device: TensorFlow cannot
    compute the op, so calling it in TensorFlow returns zeros.
    """

    @tf.function(experimental_implements=settings.implements_signature())
    def detection_postprocess(
        box_encodings: tf.Tensor, class_predictions: tf.Tensor, anchors: tf.Tensor
    ) -> tuple[tf.Tensor, ...]:
        del box_encodings, class_predictions, anchors  # the converter wires them to the op
        return tuple(tf.constant(0.0, name=name) for name in OUTPUTS)

    return detection_postprocess


def _postprocess_op(model: Any) -> Any:
    """The post-processing operator of a TFLite `ModelT`, or None."""
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode is not None and code.customCode.decode() == OP_NAME:
            return op
    return None


def output_order(model: Any) -> list[int]:
    """The op's output tensors (boxes, classes, scores, count) in a TFLite `ModelT`.

    Raises:
        ValueError: the model has no post-processing op.
    """
    op = _postprocess_op(model)
    if op is None:
        raise ValueError(f"the model has no {OP_NAME} op: it is not a detector converted by detx")
    return [int(i) for i in op.outputs]


def with_op_attributes(tflite_model: bytes, settings: PostProcessSettings) -> bytes:
    """The model with the op's full attribute map (the converter keeps only the OD API's attributes).

    Raises:
        ValueError: the model lacks the op, or needs other custom ops: the converter turns any
            op it cannot map into a custom op that no TFLite runtime has, and the model would fail
            only on the device.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    custom = sorted({c.customCode.decode() for c in model.operatorCodes if c.customCode} - {OP_NAME})
    if custom:
        raise ValueError(f"the network needs ops TFLite does not have: {', '.join(custom)}")
    op = _postprocess_op(model)
    if op is None:
        raise ValueError(f"the converted model has no {OP_NAME} op")
    op.customOptions = list(flexbuffers.Dumps(settings.attributes()))
    builder = flatbuffers.Builder(len(tflite_model) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    return bytes(builder.Output())


def op_attributes(tflite_model: bytes) -> dict[str, Any]:
    """The op's attribute map in a TFLite model ({} without the op)."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    op = _postprocess_op(model)
    return {} if op is None else dict(flexbuffers.Loads(bytes(bytearray(op.customOptions))))
