"""Starting points for training: production, a detx model, a Model Zoo checkpoint, ImageNet weights, or nothing.

`production` is the version served from the push destination, looked up when
the Trainer runs, as the Evaluator finds its baseline (ModelStore's serving
version; no TFX Resolver, which open-source KFP cannot run). Starting from it,
or from any exported detx model directory, is a warm start (`warm_start.py`).
When nothing is served, or the served version has no training weights
(exported before detx kept them, or by another tool), `production` falls back
to `trainer.pretrained_fallback` (a Zoo checkpoint, an ImageNet file, or ""
for from scratch) and says so.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from detx.components.data.label_map import LabelMap
from detx.components.model_store import SAVED_MODEL_FILE, ModelStore
from detx.components.modeling import zoo_checkpoint
from detx.components.modeling.config import ModelConfig
from detx.components.modeling.network import DetectorNetwork
from detx.components.trainer import training_weights, warm_start
from detx.components.trainer.options import PRODUCTION

__all__ = ["PRODUCTION", "StartingPoint", "initializer", "pin_production", "resolve", "start_initializer"]


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    """What a run starts from, decided when the Trainer runs.

    Attributes:
        setting: `pretrained` as given ("production", a path, or "").
        path: what is loaded: a model, checkpoint or weights file ("" = nothing, from scratch).
        source: the exported detx model of a warm start (None otherwise).
        push_destination: where `production` was looked up ("" if it was not).
        fallback: why `production` was not used ("" when it was, or was not asked for).
    """

    setting: str
    path: str
    source: warm_start.SourceModel | None = None
    push_destination: str = ""
    fallback: str = ""

    @property
    def warm(self) -> bool:
        """Whether this is a warm start from an exported detx model."""
        return self.source is not None

    def facts(self, new_classes: list[str]) -> dict[str, Any]:
        """The training facts of the start (`run_fn` writes them; lineage and the model card show them)."""
        facts: dict[str, Any] = {"pretrained": self.path, "pretrained_setting": self.setting, "warm_start": None}
        if self.source is not None:
            facts["warm_start"] = {
                "version": self.source.version,
                "path": self.source.path,
                "push_destination": self.push_destination,
                "classes": list(self.source.label_map.names),
                "new_classes": new_classes,
            }
        if self.fallback:
            facts["pretrained_fallback_reason"] = self.fallback
        return facts


def _version_in(path: str, push_destination: str) -> int | None:
    """The version number of a directory inside the push destination (None elsewhere)."""
    name = os.path.basename(os.path.normpath(path))
    inside = bool(push_destination) and os.path.dirname(os.path.normpath(path)) == os.path.normpath(push_destination)
    return int(name) if inside and name.isdigit() else None


def is_model_dir(path: str) -> bool:
    """Whether `path` is a SavedModel directory (an exported detx model, unlike a Zoo model directory)."""
    return bool(path) and bool(tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)))


def production_model(push_destination: str) -> tuple[int | None, str]:
    """The served version a warm start can use: (version, path), or (None, why not).

    Raises:
        ValueError: no push destination to look in.
    """
    if not push_destination:
        raise ValueError(
            f"pretrained {PRODUCTION!r} needs the push destination, where the served model is: set "
            "push_destination (run parameter push_destination, --push-destination)"
        )
    store = ModelStore(push_destination)
    version = store.serving_version()
    if version is None:
        return None, f"nothing is served from {push_destination} yet"
    path = store.path(version)
    if not training_weights.exists(path):
        return None, (
            f"version {version} served from {push_destination} has no training weights (exported before detx "
            "kept them, or by another tool)"
        )
    return version, path


def pin_production(pretrained: str, push_destination: str) -> str:
    """`production` replaced by the served version's directory, when a warm start can use it.

    A local run passes the version directory rather than the keyword so that TFX's
    cache key changes when production does (as the Evaluator's baseline, see
    `pipeline/local_runner.py`). Anything else, and `production` with nothing usable
    served (the Trainer then falls back and says why), comes back unchanged.
    """
    if pretrained != PRODUCTION or not push_destination:
        return pretrained
    version, path = production_model(push_destination)
    return path if version is not None else pretrained


def describe(path: str) -> str:
    """A starting path for people."""
    return path if path else "nothing (from scratch)"


def resolve(pretrained: str, push_destination: str, fallback: str, log: Callable[[str], None] = print) -> StartingPoint:
    """Decides what the run starts from.

    Args:
        pretrained: "production", an exported detx model directory, a Model Zoo
            model directory, a MobileNetV2 `.h5`, or "".
        push_destination: where production is served from.
        fallback: what `production` starts from when no served version can be used.
        log: where to say what was decided.

    Raises:
        ValueError: `production` without a push destination.
        warm_start.WarmStartError: a detx model directory that cannot be trained further.
    """
    if pretrained == PRODUCTION:
        version, found = production_model(push_destination)
        if version is None:
            log(
                f"pretrained {PRODUCTION!r}: {found}; starting from {describe(fallback)} instead "
                "(trainer.pretrained_fallback)"
            )
            return StartingPoint(pretrained, fallback, push_destination=push_destination, fallback=found)
        return StartingPoint(pretrained, found, warm_start.read_source(found, version), push_destination)
    if is_model_dir(pretrained):
        if not training_weights.exists(pretrained):
            training_weights.read(pretrained)  # raises, naming what is missing and what to do
        source = warm_start.read_source(pretrained, _version_in(pretrained, push_destination))
        return StartingPoint(pretrained, pretrained, source, push_destination)
    return StartingPoint(pretrained, pretrained)


def initializer(pretrained: str, scope: str, log: Callable[[str], None] = print) -> Callable[[DetectorNetwork], None]:
    """Returns a function that loads a Model Zoo checkpoint, ImageNet weights or nothing into a fresh network.

    Args:
        pretrained: a Model Zoo model directory, a `.h5` Keras MobileNetV2
            weights file (include_top=False, same alpha), or "" to train from scratch.
        scope: what a Zoo checkpoint restores (see modeling.config.RESTORE_SCOPES).
        log: where to say what was loaded.

    Raises:
        FileNotFoundError: the path does not exist.
    """

    def load(network: DetectorNetwork) -> None:
        if not pretrained:
            log("no pretrained weights: training from scratch")
            return
        if tf.io.gfile.isdir(pretrained):
            n = zoo_checkpoint.restore(network, zoo_checkpoint.checkpoint_prefix(pretrained), scope)
            log(f"restored {n} variables ({scope}) from the Model Zoo checkpoint in {pretrained}")
            return
        if not tf.io.gfile.exists(pretrained):
            raise FileNotFoundError(
                f"pretrained weights {pretrained} do not exist; give a Model Zoo model directory or a "
                "MobileNetV2 ImageNet weights file"
            )
        network.backbone.load_weights(pretrained)
        log(f"loaded ImageNet MobileNetV2 backbone weights from {pretrained}")

    return load


def start_initializer(
    start: StartingPoint,
    scope: str,
    label_map: LabelMap,
    model_config: ModelConfig,
    log: Callable[[str], None] = print,
) -> Callable[[DetectorNetwork], None]:
    """The initializer of a resolved start: a warm start's restore, or `initializer` for the other kinds.

    Args:
        start: from `resolve`.
        scope: what a Zoo checkpoint restores.
        label_map: this run's classes.
        model_config: this run's architecture.
        log: where to say what was loaded.
    """
    source = start.source
    if source is None:
        return initializer(start.path, scope, log)

    def load(network: DetectorNetwork) -> None:
        weights = training_weights.read(source.path)
        appended = warm_start.restore(network, source, weights, label_map, model_config)
        added = f"; new class(es) {', '.join(appended)} start at the focal-loss prior" if appended else ""
        log(f"warm start: restored {len(weights.values)} weights of {source.name()} ({source.path}){added}")

    return load
