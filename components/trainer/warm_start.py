"""Warm start: a new training network initialized from an exported detx model, usually the served version.

Everything the restore relies on is read back from the model, not assumed: its
signatures and the label map asset come from the SavedModel's own graph
(`saved_model.pb`: `signature_def` and `asset_file_def`), its weights and
architecture from the training weights (`training_weights.py`).

Classes: the new run's label map must keep every class the model knows, under
the same label id (the span store's union label map appends new classes after
the old ones). Every weight is restored; the class head's rows of appended
classes start at the focal-loss prior (bias `ModelConfig.class_bias_init`,
zero kernel), so a new class scores exactly the prior everywhere until
training teaches it, and the old classes' answers are unchanged at step 0.
A class that disappeared is an error naming it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap, LabelMapError
from detx.components.modeling.config import ModelConfig
from detx.components.modeling.network import DetectorNetwork, class_head_columns
from detx.components.trainer.export import OUTPUTS, SERVING_DEFAULT
from detx.components.trainer.training_weights import TrainingWeights, WarmStartError

# The ModelConfig fields that shape the weights: named when production's do not fit.
_ARCHITECTURE = ("alpha", "fpn_depth", "tower_layers", "aspect_ratios", "scales_per_octave")
_SHOWN = 8


@dataclasses.dataclass(frozen=True)
class SourceModel:
    """An exported detx model to start from, as read back from its directory.

    Attributes:
        path: its SavedModel directory.
        version: its version number in the push destination (None: a directory given by hand).
        label_map: its label map asset.
        signatures: its serving signatures.
    """

    path: str
    version: int | None
    label_map: LabelMap
    signatures: tuple[str, ...]

    def name(self) -> str:
        """How messages call it."""
        return f"version {self.version}" if self.version is not None else self.path


def read_source(path: str, version: int | None = None) -> SourceModel:
    """Reads a model's signatures and label map asset from its graph, without loading variables.

    Raises:
        WarmStartError: not a SavedModel, not a detector with the Zoo's `serving_default`, or no label map asset.
    """
    from tensorflow.python.tools import saved_model_utils

    try:
        meta_graph = saved_model_utils.get_meta_graph_def(path, "serve")
    except (OSError, RuntimeError, ValueError) as e:
        raise WarmStartError(f"cannot read the SavedModel at {path}: {e}") from e
    signature = meta_graph.signature_def.get(SERVING_DEFAULT)
    if signature is None or "input_tensor" not in signature.inputs or set(OUTPUTS) - set(signature.outputs):
        raise WarmStartError(
            f"{path} is not a detector exported by detx: its {SERVING_DEFAULT} signature does not take input_tensor "
            f"and return {', '.join(OUTPUTS)}"
        )
    # The asset list names the files the graph loads; detx's export adds exactly one, the label map.
    assets = [a.filename for a in meta_graph.asset_file_def if os.path.basename(a.filename) == LABEL_MAP_FILENAME]
    if not assets:
        raise WarmStartError(f"{path} has no {LABEL_MAP_FILENAME} asset: its classes are unknown, so nothing maps")
    try:
        label_map = LabelMap.read(os.path.join(path, "assets", assets[0]))
    except LabelMapError as e:
        raise WarmStartError(f"cannot read the label map of {path}: {e}") from e
    # TF adds `__saved_model_init_op` (its asset initializer) to the map; it is not a serving signature.
    signatures = tuple(sorted(k for k in meta_graph.signature_def if not k.startswith("__")))
    return SourceModel(path, version, label_map, signatures)


def new_classes(source: SourceModel, label_map: LabelMap) -> list[str]:
    """The classes `label_map` appends to the source model's, in label order.

    Raises:
        WarmStartError: a class of the source model is missing from `label_map`, or has another id there.
    """
    missing = [name for name in source.label_map.names if label_map.label_of(name) is None]
    if missing:
        raise WarmStartError(
            f"class(es) {', '.join(map(repr, missing))} of {source.name()} are not in this run's label map "
            f"({', '.join(label_map.names)}): a warm start keeps every class the model knows. Train on a span "
            "window whose label map still has them (--span-window), or start from a Model Zoo checkpoint or from "
            "scratch (--pretrained PATH or ''; detx ct run --no-warm-start)"
        )
    moved = [
        f"{name!r} is label {label} in {source.name()} but {label_map.label_of(name)} here"
        for label, name in source.label_map.items()
        if label_map.label_of(name) != label
    ]
    if moved:
        raise WarmStartError(
            "; ".join(moved) + ": a warm start keeps the model's label ids, so its classes must come first, in its "
            "order (a span root's union label map does this; new classes go after them)"
        )
    return list(label_map.names[source.label_map.num_classes :])


def _architecture(fields: dict[str, Any]) -> str:
    # JSON gives lists where the dataclass has tuples; both read the same here.
    return ", ".join(f"{k} {tuple(v) if isinstance(v := fields.get(k), list | tuple) else v}" for k in _ARCHITECTURE)


def _grown_class_head(
    kernel: np.ndarray, bias: np.ndarray, anchors: int, old_k: int, new_k: int, prior: float
) -> tuple[np.ndarray, np.ndarray]:
    """The class head's pointwise kernel and bias for `new_k` classes: old columns copied, new ones at the prior."""
    old_cols = class_head_columns(anchors, old_k)
    new_cols = class_head_columns(anchors, new_k)[:, : old_k + 1]
    grown_kernel = np.zeros((*kernel.shape[:-1], anchors * (new_k + 1)), kernel.dtype)
    grown_bias = np.full((anchors * (new_k + 1),), prior, bias.dtype)
    grown_kernel[..., new_cols.ravel()] = kernel[..., old_cols.ravel()]
    grown_bias[new_cols.ravel()] = bias[old_cols.ravel()]
    return grown_kernel, grown_bias


def restore(
    network: DetectorNetwork,
    source: SourceModel,
    weights: TrainingWeights,
    label_map: LabelMap,
    model_config: ModelConfig,
) -> list[str]:
    """Copies the source model's weights into a fresh network for `label_map`; returns the new classes.

    Nothing is assigned unless every weight fits.

    Raises:
        WarmStartError: a class disappeared or moved, the weights do not match the label map asset, or the
            architecture differs (another preset).
    """
    appended = new_classes(source, label_map)
    old_k, new_k = source.label_map.num_classes, label_map.num_classes
    if weights.num_classes != old_k:
        raise WarmStartError(
            f"the training weights of {source.name()} are for {weights.num_classes} classes but its label map "
            f"asset has {old_k}: the model directory is inconsistent; start from another one"
        )
    targets = {v.path: v for v in network.model.weights}
    head = {network.class_head.pointwise_kernel.path, network.class_head.bias.path}
    problems = [f"missing from the model: {k}" for k in sorted(set(targets) - set(weights.values))]
    problems += [f"not in this network: {k}" for k in sorted(set(weights.values) - set(targets))]
    anchors = model_config.anchors_per_location
    for key in sorted(set(targets) & set(weights.values)):
        have, want = weights.values[key].shape, tuple(targets[key].shape)
        if key in head:
            have = (*have[:-1], have[-1] // (old_k + 1) * (new_k + 1))
        if tuple(have) != want:
            problems.append(f"{key}: {tuple(weights.values[key].shape)} in the model, {want} here")
    if problems:
        raise WarmStartError(
            f"the weights of {source.name()} do not fit this network ({len(problems)} problem(s)):\n  "
            + "\n  ".join(problems[:_SHOWN])
            + ("\n  ..." if len(problems) > _SHOWN else "")
            + f"\nIt was built with {_architecture(weights.model_config)}; this run builds "
            f"{_architecture(dataclasses.asdict(model_config))}. Use the preset it was trained with (--preset)."
        )
    values = dict(weights.values)
    kernel_key, bias_key = network.class_head.pointwise_kernel.path, network.class_head.bias.path
    values[kernel_key], values[bias_key] = _grown_class_head(
        values[kernel_key], values[bias_key], anchors, old_k, new_k, model_config.class_bias_init
    )
    for key, variable in targets.items():
        variable.assign(values[key])
    return appended
