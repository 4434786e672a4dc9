"""The detector a job runs: which SavedModel, its label names and fingerprint, and one batch through it.

The job decodes images itself (components/data/images.py: EXIF upright, the
pixel limit, corrupt files caught one by one), so it feeds the decoded pixels
to the uint8 `serving_default` signature rather than the `encoded_image` one,
which would decode every image a second time inside the graph. That signature
takes one height and width per call, so a batch is run as one call per image
size in it (one call when the images share a size, as a camera's do).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from detx.components.batch_inference.listing import InferenceError
from detx.components.batch_inference.records import BoxPrediction
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap, LabelMapError
from detx.components.model_store import ModelStore
from detx.components.trainer.export import SERVING_DEFAULT


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """The SavedModel a job runs.

    Attributes:
        path: the SavedModel directory.
        version: its number in the push destination (None for a directory given as such).
    """

    path: str
    version: int | None


def resolve(model: str | None, push_destination: str) -> ModelRef:
    """`--model`: a version number of the push destination, a SavedModel directory, or None for the served version.

    The served version is the model store's (the stable version of a pinned traffic split when one is pinned).

    Raises:
        InferenceError: no such version, no served version, or not a SavedModel.
    """
    store = ModelStore(push_destination)
    if model is None or model.isdigit():
        complete = store.complete_versions()
        version = store.serving_version() if model is None else int(model)
        if version is None:
            raise InferenceError(
                f"no version is served in {push_destination} yet; push one (detx run) or pass --model VERSION|DIR"
            )
        if version not in complete:
            listed = ", ".join(map(str, complete)) or "none"
            raise InferenceError(
                f"there is no complete version {version} in {push_destination} (versions: {listed}); "
                "pass one of them or a SavedModel folder to --model"
            )
        return ModelRef(store.path(version), version)
    if not tf.io.gfile.exists(os.path.join(model, "saved_model.pb")):
        raise InferenceError(f"{model} is not a SavedModel folder (no saved_model.pb); pass --model VERSION|DIR")
    return ModelRef(model, None)


def fingerprint(path: str) -> str:
    """What identifies the SavedModel's graph and weights: TensorFlow's fingerprint, else a hash of its files."""
    try:
        fp = tf.saved_model.experimental.read_fingerprint(path)
        return f"tf:{fp.saved_model_checksum}:{fp.signature_def_hash}:{fp.checkpoint_hash}"
    except Exception:  # Models saved before TF 2.12 have no fingerprint.pb.
        digest = hashlib.sha256()
        for name in ("saved_model.pb", os.path.join("variables", "variables.index")):
            if tf.io.gfile.exists(os.path.join(path, name)):
                with tf.io.gfile.GFile(os.path.join(path, name), "rb") as f:
                    digest.update(f.read())
        return f"sha256:{digest.hexdigest()}"


def label_names(path: str) -> dict[int, str]:
    """The model's classes from its label map asset (`assets/label_map.pbtxt`, written by the export).

    Raises:
        InferenceError: the model has no readable label map.
    """
    try:
        return dict(LabelMap.read(os.path.join(path, "assets", LABEL_MAP_FILENAME)).items())
    except (LabelMapError, OSError) as e:
        raise InferenceError(
            f"{path} has no readable assets/{LABEL_MAP_FILENAME} ({e}); export it with detx (detx run) to name classes"
        ) from e


class Detector:
    """A loaded SavedModel and its class names; `predict` answers a batch of decoded images."""

    def __init__(self, path: str, min_score: float) -> None:
        self.names = label_names(path)
        self.min_score = min_score
        self._model = tf.saved_model.load(path)
        self._fn = self._model.signatures[SERVING_DEFAULT]

    def predict(self, images: Sequence[np.ndarray]) -> list[tuple[BoxPrediction, ...]]:
        """The detections of each [H, W, 3] uint8 image, best first, as in the signature's answer."""
        out: list[tuple[BoxPrediction, ...] | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(tuple(image.shape), []).append(i)
        for indices in by_shape.values():
            batch = np.stack([images[i] for i in indices])
            result = self._fn(input_tensor=tf.constant(batch))
            arrays = {k: v.numpy() for k, v in result.items()}
            for row, i in enumerate(indices):
                out[i] = self._boxes(arrays, row)
        return [o if o is not None else () for o in out]

    def _boxes(self, arrays: dict[str, Any], row: int) -> tuple[BoxPrediction, ...]:
        n = int(arrays["num_detections"][row])
        boxes = arrays["detection_boxes"][row][:n]
        scores = arrays["detection_scores"][row][:n]
        classes = arrays["detection_classes"][row][:n].astype(np.int64)
        # The post-processing already answers best first; sorting again keeps records' promise for any model.
        order = np.argsort(-scores, kind="stable")
        return tuple(
            BoxPrediction(
                label=self.names.get(int(classes[j]), str(int(classes[j]))),
                class_id=int(classes[j]),
                score=float(scores[j]),
                box=(float(boxes[j][0]), float(boxes[j][1]), float(boxes[j][2]), float(boxes[j][3])),
            )
            for j in order
            if float(scores[j]) >= self.min_score
        )
