"""The detector inside an exported detx SavedModel, rebuilt as a Keras network that TFLite can convert.

TFLite cannot convert the exported signatures as they are (in-graph batching,
TensorFlow's NMS), and a loaded SavedModel keeps no callable network. So, as
the OD API's TFLite export rebuilds its model from a checkpoint, detx rebuilds
the network from its preset and restores the SavedModel's own variables into
it: the exported object's `model` (components/trainer/export.py) is the
network with batch norm folded, and its variables sit in the SavedModel's
checkpoint under that object's path. (A model exported with
`fold_batchnorm=False`, which only bench/bn_fold.py does, is not recognized.)

Which preset: the one whose class head has the SavedModel's shape and whose
every variable the checkpoint fills. The rebuilt detector must then detect
exactly as the SavedModel's `serving_default` on a probe image, or nothing is
converted.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap, LabelMapError
from detx.components.evaluation.detections import Detections, unmatched
from detx.components.modeling import anchors as anchor_lib
from detx.components.modeling import fold
from detx.components.modeling.config import PRESETS, ModelConfig
from detx.components.modeling.network import build_network
from detx.components.modeling.postprocess import postprocess
from detx.components.trainer.data import preprocess
from detx.components.trainer.export import OUTPUTS, SERVING_DEFAULT

SAVED_MODEL_FILE = "saved_model.pb"
INPUT = "input_tensor"


class DetectorSourceError(ValueError):
    """The folder does not hold a detx detector that can be converted, and why."""


@dataclasses.dataclass(frozen=True)
class Detector:
    """An exported detector's network, ready for conversion.

    Attributes:
        model: the inference network: images [B, S, S, 3] in [-1, 1] to (box codes, class logits).
        config: its architecture and post-processing settings.
        label_map: its classes.
        preset: the detx preset it was built from.
        path: the SavedModel it came from.
        saved_model: that SavedModel, loaded (its signatures evaluate it beside the TFLite models).
    """

    model: keras.Model
    config: ModelConfig
    label_map: LabelMap
    preset: str
    path: str
    saved_model: Any = dataclasses.field(default=None, repr=False, compare=False)


def _check_signature(loaded: Any, path: str) -> None:
    signature = loaded.signatures.get(SERVING_DEFAULT)
    advice = (
        "detx converts detectors exported by detx (components/trainer/export.py): give a pushed version "
        "(<push destination>/<version>) or the Trainer's Format-Serving folder"
    )
    if signature is None:
        raise DetectorSourceError(
            f"{path} has no {SERVING_DEFAULT!r} signature (it has: {', '.join(sorted(loaded.signatures)) or 'none'}); "
            + advice
        )
    inputs = signature.structured_input_signature[1]
    spec = inputs.get(INPUT)
    if spec is None or spec.dtype != tf.uint8 or spec.shape.rank != 4:
        raise DetectorSourceError(
            f"{path}'s {SERVING_DEFAULT!r} signature does not take {INPUT!r} uint8 [batch, height, width, 3] "
            f"images (it takes {', '.join(f'{k} {v.dtype.name} {v.shape}' for k, v in inputs.items())}); " + advice
        )
    missing = sorted(set(OUTPUTS) - set(signature.structured_outputs))
    if missing:
        raise DetectorSourceError(f"{path}'s {SERVING_DEFAULT!r} signature lacks {', '.join(missing)}; " + advice)


def _candidates(
    shapes: set[tuple[int, ...]], num_classes: int, configs: Mapping[str, ModelConfig]
) -> list[tuple[str, ModelConfig]]:
    """Presets whose class head (a 1x1 pointwise kernel, fpn_depth to anchors x (K + 1)) is in the checkpoint."""
    return [
        (name, config)
        for name, config in configs.items()
        if (1, 1, config.fpn_depth, config.anchors_per_location * (num_classes + 1)) in shapes
    ]


def _restore(model: keras.Model, variables_path: str) -> bool:
    """Restores the exported object's `model` variables into `model`; False when they do not fit it."""
    try:
        status = tf.train.Checkpoint(model=model).read(variables_path)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError):
        return False
    return True


def _probe_detections(detect: Any, size: int) -> Detections:
    rng = np.random.default_rng(0)
    # A textured probe: a flat image would give every anchor of a level the same scores (ties everywhere).
    probe = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    return Detections.from_outputs({k: v.numpy() for k, v in detect(tf.constant(probe)).items()})


def _serve(signature: Any, images: tf.Tensor) -> Any:
    return signature(**{INPUT: images})


def rebuilt_detections(model: keras.Model, config: ModelConfig) -> Any:
    """Detx's own detector (network, then `modeling.postprocess`) on uint8 images, for comparisons."""
    anchors = tf.constant(anchor_lib.generate(config))

    def detect(images: tf.Tensor) -> dict[str, tf.Tensor]:
        codes, logits = model(preprocess(images, config.image_size), training=False)
        return postprocess(codes, logits, anchors, config)

    return detect


def load_detector(path: str, configs: Mapping[str, ModelConfig] | None = None) -> Detector:
    """Rebuilds the detector of a detx SavedModel.

    Args:
        path: the SavedModel folder.
        configs: preset name to architecture, the candidates (default: detx's presets).

    Raises:
        DetectorSourceError: not a SavedModel, no label map, not detx's signature, or no
            preset whose network takes its weights and detects as it does.
    """
    if not tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
        raise DetectorSourceError(
            f"{path} is not a SavedModel (no {SAVED_MODEL_FILE}): give the exported model's folder, "
            "e.g. a pushed version <push destination>/<version> (`detx models` lists them)"
        )
    try:
        label_map = LabelMap.read(os.path.join(path, "assets", LABEL_MAP_FILENAME))
    except LabelMapError as e:
        raise DetectorSourceError(
            f"{path} has no usable assets/{LABEL_MAP_FILENAME} ({e}): detx exports the label map with the model"
        ) from None
    loaded = tf.saved_model.load(path)
    _check_signature(loaded, path)
    variables_path = os.path.join(path, "variables", "variables")
    shapes = {tuple(shape) for _, shape in tf.train.list_variables(variables_path)}
    presets = configs if configs is not None else {name: model for name, (model, _) in PRESETS.items()}
    for name, config in _candidates(shapes, label_map.num_classes, presets):
        # The Trainer's export folds batch norm (export.export's default), and so does the rebuilt copy.
        model = fold.fold_batchnorm(build_network(config, label_map.num_classes).model)
        if not _restore(model, variables_path):
            continue
        size = config.image_size
        reference = _probe_detections(functools.partial(_serve, loaded.signatures[SERVING_DEFAULT]), size)
        rebuilt = _probe_detections(rebuilt_detections(model, config), size)
        if len(reference) == len(rebuilt) and not unmatched(reference, rebuilt, 0.999, 1e-4):
            return Detector(model, config, label_map, name, path, loaded)
    raise DetectorSourceError(
        f"{path}'s weights fit none of detx's presets ({', '.join(presets)}) for {label_map.num_classes} "
        "class(es), or the rebuilt network does not detect as the SavedModel does: it was not exported by this "
        "version of detx. Export it again with this version (detx run), then convert it."
    )
