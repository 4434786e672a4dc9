"""Runs a detx TFLite detector with TFLite's interpreter and gives detections that mean what the SavedModel's do.

The model's raw outputs are the post-processing op's: 0-based classes, boxes
not clipped to the image (postprocess_op.py). Here classes become detx's
1-based label ids and boxes are clipped to the image, those left with no area
dropped, as `modeling.postprocess` does after NMS; so a TFLite model's COCO mAP,
`detx predict --tflite` output and the SavedModel's are comparable.

A model with per-class ("regular") NMS and more classes than threads runs with
one thread: TFLite's kernel skips class index T on T >= 2 threads (postprocess_op.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from detx.components.data import features as F
from detx.components.evaluation.detections import Detections
from detx.components.tflite import inputs
from detx.components.tflite.metadata import MetadataError, read_metadata
from detx.components.tflite.postprocess_op import OUTPUTS, op_attributes

SIGNATURE = "serving_default"
INPUT = "image"
DEFAULT_THREADS = 2


def run_threads(model: bytes, requested: int) -> int:
    """The threads detx kfp runs a model with: 1 when TFLite's per-class NMS would skip a class on `requested`."""
    attributes = op_attributes(model)
    skips = bool(attributes.get("use_regular_nms")) and int(attributes.get("num_classes", 0)) > requested
    return 1 if skips else requested


class TFLiteModelError(ValueError):
    """The file is not a TFLite detector converted by detx, or the input does not fit it."""


class TFLiteDetector:
    """A detx TFLite model in TFLite's interpreter (one image at a time, as on a device).

    Args:
        model: the .tflite file's path or bytes.
        num_threads: CPU threads of the interpreter (1 for a model with per-class NMS, whatever is asked).
        clip_to_image: clip boxes and drop those left with no area, as detx's post-processing does
            (False: the op's raw boxes, as an app reading the outputs gets them; benchmarks compare).
        threads_as_given: use `num_threads` even where TFLite's per-class NMS then skips a class (what
            a multi-threaded app gets; benchmarks measure it).

    Attributes:
        num_threads: the threads it runs with.
    """

    def __init__(
        self,
        model: str | bytes,
        num_threads: int = DEFAULT_THREADS,
        clip_to_image: bool = True,
        threads_as_given: bool = False,
    ) -> None:
        if isinstance(model, str):
            with tf.io.gfile.GFile(model, "rb") as f:
                model = bytes(f.read())
        self.model_bytes = model
        self.clip_to_image = clip_to_image
        try:
            self.num_threads = num_threads if threads_as_given else run_threads(model, num_threads)
            self._interpreter = tf.lite.Interpreter(model_content=model, num_threads=self.num_threads)
            runner = self._interpreter.get_signature_runner(SIGNATURE)
        except Exception as e:  # flatbuffer parsing and the interpreter raise several kinds on foreign bytes
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise TFLiteModelError(f"not a TFLite detector converted by detx: {first}") from None
        self._runner = runner
        details = runner.get_input_details().get(INPUT)
        outputs = set(runner.get_output_details())
        if details is None or outputs != set(OUTPUTS):
            raise TFLiteModelError(
                f"not a TFLite detector converted by detx: its {SIGNATURE!r} signature takes "
                f"{sorted(runner.get_input_details())} and returns {sorted(outputs)}; convert the SavedModel "
                "with `detx export tflite`"
            )
        self.image_size = int(details["shape"][1])
        self.input_dtype = np.dtype(details["dtype"])
        self._scale, self._zero_point = details["quantization"]
        try:
            self.labels = read_metadata(model).labels
        except (MetadataError, ValueError, KeyError):
            self.labels = []

    def label_names(self) -> dict[int, str]:
        """Label id (1-based) to class name, from the model's metadata ({} without)."""
        return {i + 1: name for i, name in enumerate(self.labels)}

    def detect(self, image: np.ndarray) -> Detections:
        """Detections for one network input: float32 [S, S, 3] in [-1, 1] (see `inputs.pixels`).

        Raises:
            TFLiteModelError: the image is not S x S x 3.
        """
        size = self.image_size
        if image.shape != (size, size, 3):
            raise TFLiteModelError(
                f"the image is {image.shape} but the model takes {size}x{size}x3 inputs: make them with "
                f"inputs.pixels (it resizes any image to {size}x{size})"
            )
        x = image[None].astype(np.float32)
        if self.input_dtype == np.uint8:
            # The input's quantization: real = (q - zero_point) * scale.
            x = np.clip(np.round(x / self._scale + self._zero_point), 0, 255).astype(np.uint8)
        out = self._runner(**{INPUT: x})
        n = int(out["num_detections"][0])
        boxes = out["detection_boxes"][0, :n]
        if self.clip_to_image:
            boxes = np.clip(boxes, 0.0, 1.0)
        keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
        return Detections(
            boxes=boxes[keep].astype(np.float32),
            classes=np.rint(out["detection_classes"][0, :n][keep]).astype(np.int64) + 1,
            scores=out["detection_scores"][0, :n][keep].astype(np.float32),
        )

    def detect_encoded(self, encoded: bytes) -> Detections:
        """Detections for JPEG/PNG bytes (turned upright and resized as the SavedModel does)."""
        return self.detect(inputs.pixels(encoded, self.image_size))

    def example_predictor(self, max_detections: int = 100) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
        """A predictor of serialized tf.Examples in the exported signatures' output format (for coco_metrics)."""
        spec = {F.ENCODED: tf.io.FixedLenFeature([], tf.string)}

        def predict(examples: tf.Tensor) -> dict[str, tf.Tensor]:
            batch = [
                self.detect_encoded(bytes(tf.io.parse_single_example(e, spec)[F.ENCODED].numpy())) for e in examples
            ]
            boxes = np.zeros((len(batch), max_detections, 4), np.float32)
            scores = np.zeros((len(batch), max_detections), np.float32)
            classes = np.zeros((len(batch), max_detections), np.float32)
            for i, d in enumerate(batch):
                n = min(len(d), max_detections)
                boxes[i, :n], scores[i, :n], classes[i, :n] = d.boxes[:n], d.scores[:n], d.classes[:n]
            counts = np.array([min(len(d), max_detections) for d in batch], np.float32)
            return {
                "detection_boxes": tf.constant(boxes),
                "detection_scores": tf.constant(scores),
                "detection_classes": tf.constant(classes),
                "num_detections": tf.constant(counts),
            }

        return predict
