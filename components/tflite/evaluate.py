"""COCO mAP of a SavedModel and of its TFLite models on the same examples, with detx's own metric code.

Both go through `evaluation.coco_metrics.evaluate` (pycocotools' COCOeval on
the same ground truth), so the numbers compare: the SavedModel through its
`tf_example` signature, a TFLite model through TFLite's interpreter one image
at a time (interpreter.py), each image decoded, turned upright and resized as
that signature does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from detx.components.evaluation.coco_metrics import CocoMetrics, evaluate
from detx.components.tflite.interpreter import TFLiteDetector
from detx.components.tflite.source import DetectorSourceError
from detx.components.trainer.export import TF_EXAMPLE


def saved_model_metrics(saved_model: str | Any, examples: Sequence[bytes], num_classes: int) -> CocoMetrics:
    """The SavedModel's COCO metrics through its `tf_example` signature.

    Args:
        saved_model: its folder, or the loaded SavedModel.
        examples: serialized tf.Examples with boxes.
        num_classes: K.

    Raises:
        DetectorSourceError: the SavedModel has no `tf_example` signature.
    """
    loaded = tf.saved_model.load(saved_model) if isinstance(saved_model, str) else saved_model
    path = saved_model if isinstance(saved_model, str) else "the SavedModel"
    if TF_EXAMPLE not in loaded.signatures:
        raise DetectorSourceError(
            f"{path} has no {TF_EXAMPLE!r} signature to evaluate it on tf.Examples; export it with detx"
        )
    return evaluate(loaded.signatures[TF_EXAMPLE], examples, num_classes)


def tflite_metrics(
    model: bytes, examples: Sequence[bytes], num_classes: int, num_threads: int = 2, **runner: bool
) -> CocoMetrics:
    """A TFLite model's COCO metrics, run by TFLite's interpreter (`runner`: `TFLiteDetector`'s flags)."""
    detector = TFLiteDetector(model, num_threads=num_threads, **runner)
    return evaluate(detector.example_predictor(), examples, num_classes)
