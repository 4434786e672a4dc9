"""Reads a pipeline config file (YAML) and merges command-line overrides into a `PipelineConfig`.

The file mirrors `PipelineConfig`, section by section:

    name: detx
    data: {path: data/coco, format: coco, splits: {train: 4, eval: 1}}
    trainer: {preset: zoo320, pretrained: checkpoints/ssd_mobilenet_v2_fpnlite_320x320}
    train_steps: 50000
    evaluator: {min_map_50: 0.3, max_map_50_drop: 0.01}
    infra_validator: {max_p99_ms: 200, max_memory_mb: 4096, concurrency: 4}
    release: {approval: required, rollout: progressive, intended_use: "...", limitations: "..."}
    tflite: {enabled: true, calibration_examples: 100, max_int8_map50_drop: 0.02}
    tuner: {enabled: true, max_trials: 6, trial_steps: 200, objective: map_50}
    batch_inference: {enabled: true, min_score: 0.3, batch_size: 16}
    push_destination: gs://bucket/models/detx
    stop_after: push
    beam_args: [--runner=DataflowRunner, --project=my-project, ...]   # optional
    kubeflow: {image: REGISTRY/detx-pipeline:TAG, pipeline_root: gs://bucket/detx/root, trainer_gpus: 1}
    ct: {min_new_images: 500, class_linf: 0.1, brightness_jsd: 0.1, request_log: logs/requests}

Unknown keys are errors (a typo must not silently fall back to a default).
Relative paths in the file are relative to the file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.evaluator.options import EvaluatorOptions
from detx.components.infra_validator.options import InfraValidatorOptions
from detx.components.release.options import ReleaseOptions
from detx.components.tflite.options import TFLiteOptions
from detx.components.trainer.options import PRODUCTION, TrainerOptions
from detx.components.tuner.options import TunerOptions
from detx.pipeline.config import ContinuousTrainingConfig, DataConfig, KubeflowConfig, PipelineConfig, Stage

_SECTIONS: dict[str, type[Any]] = {
    "data": DataConfig,
    "trainer": TrainerOptions,
    "evaluator": EvaluatorOptions,
    "infra_validator": InfraValidatorOptions,
    "release": ReleaseOptions,
    "tflite": TFLiteOptions,
    "tuner": TunerOptions,
    "batch_inference": BulkInferenceOptions,
    "kubeflow": KubeflowConfig,
    "ct": ContinuousTrainingConfig,
}
# Path-valued keys resolved against the config file's folder: (section or "", key) -> the
# words such a key also takes that are not paths.
_PATHS: dict[tuple[str, str], frozenset[str]] = {
    ("data", "path"): frozenset(),
    ("trainer", "pretrained"): frozenset({PRODUCTION}),
    ("", "schema_file"): frozenset(),
    ("", "push_destination"): frozenset(),
    ("ct", "request_log"): frozenset(),
    ("ct", "state_dir"): frozenset(),
}


class ConfigError(ValueError):
    """The config file or an override is wrong; the message names the key."""


def _check_keys(values: Mapping[str, Any], cls: type[Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; valid keys: {', '.join(sorted(known))}")


def read_config_file(path: str) -> dict[str, Any]:
    """The file's mapping, with relative paths made absolute."""
    try:
        with open(path) as f:
            loaded = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must be a mapping of keys to values, got {type(loaded).__name__}")
    base = os.path.dirname(os.path.abspath(path))
    for (section, key), words in _PATHS.items():
        holder = loaded.get(section) if section else loaded
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key]:
            value = holder[key]
            if value not in words and "://" not in value and not os.path.isabs(value):
                holder[key] = os.path.normpath(os.path.join(base, value))
    return loaded


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` on top, one level into sections."""
    merged = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if key in _SECTIONS and isinstance(value, Mapping):
            section = merged.setdefault(key, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{key} must be a mapping in the config file")
            section.update(value)
        else:
            merged[key] = value
    return merged


def layered_values(paths: Sequence[str], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The config files' values, each file over the ones before it, then `overrides` on top."""
    values: dict[str, Any] = {}
    for path in paths:
        values = merge(values, read_config_file(path))
    return merge(values, overrides)


def build_config(values: Mapping[str, Any]) -> PipelineConfig:
    """A `PipelineConfig` from a nested mapping (file values merged with overrides).

    Raises:
        ConfigError: unknown keys, a missing data path, or a value a config class rejects.
    """
    _check_keys(values, PipelineConfig, "the config")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key} must be a mapping, got {value!r}")
            _check_keys(value, _SECTIONS[key], f"section {key!r}")
            kwargs[key] = value
        else:
            kwargs[key] = value
    data = kwargs.pop("data", None)
    if not data or not data.get("path"):
        raise ConfigError("no data path: give --data DIR or data.path in the config file")
    try:
        if "stop_after" in kwargs:
            kwargs["stop_after"] = Stage.parse(str(kwargs["stop_after"]))
        data = dict(data)
        if "splits" in data:
            data["splits"] = {str(k): int(v) for k, v in dict(data["splits"]).items()}
        if "beam_args" in kwargs and (
            not isinstance(kwargs["beam_args"], list) or not all(isinstance(a, str) for a in kwargs["beam_args"])
        ):
            raise ConfigError(
                f"beam_args must be a list of strings such as --runner=DataflowRunner, got {kwargs['beam_args']!r}"
            )
        sections = {k: _SECTIONS[k](**kwargs.pop(k)) for k in _SECTIONS if k != "data" and k in kwargs}
        return PipelineConfig(data=DataConfig(**data), **sections, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e
