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

- `use_regular_nms=True` (the default here) is per-class NMS, as detx's: up to
  `detections_per_class` boxes per class, then the best `max_detections` overall.
  The OD API exports the op with the faster class-agnostic NMS instead (one class
  per anchor, one NMS); `PostProcessSettings(use_regular_nms=False)` gives that.
- The op neither clips boxes to the image nor drops boxes left with no area after
  clipping; detx does both after NMS. `interpreter.py` does both on the op's
  output, so detx's own TFLite results (evaluation, `detx predict --tflite`) mean
  what the SavedModel's do; an app reading the raw outputs may get a box that
  sticks out of the image a little.
- The op keeps scores `>= nms_score_threshold`; TensorFlow's NMS keeps `>`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import attr_value_pb2

from detx.components.modeling.config import ModelConfig

OP_NAME = "TFLite_Detection_PostProcess"
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
        use_regular_nms: per-class NMS (detx's); False: the OD API's class-agnostic fast NMS.
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

    def implements_signature(self) -> str:
        """The `experimental_implements` text: a NameAttrList naming the op, with its attributes."""
        signature = attr_value_pb2.NameAttrList(name=OP_NAME)
        ints: dict[str, int] = {
            "max_detections": self.max_detections,
            # The fast NMS reports one class per box; regular NMS ignores this attribute.
            "max_classes_per_detection": 1,
            "detections_per_class": self.detections_per_class,
            "num_classes": self.num_classes,
        }
        floats: dict[str, float] = {
            "nms_score_threshold": self.score_threshold,
            "nms_iou_threshold": self.iou_threshold,
            **dict(zip(("y_scale", "x_scale", "h_scale", "w_scale"), self.box_code_scales, strict=True)),
        }
        for key, number in ints.items():
            signature.attr[key].i = number
        for key, real in floats.items():
            signature.attr[key].f = real
        signature.attr["use_regular_nms"].b = self.use_regular_nms
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
