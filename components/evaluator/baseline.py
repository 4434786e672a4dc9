"""Finds the model in production, the Evaluator's baseline, without a TFX Resolver node.

Open-source Kubeflow Pipelines cannot run Resolver nodes, so the baseline is
read from the push destination itself: the version TF Serving serves there
(the newest complete one). Locally and on KFP alike.
"""

from __future__ import annotations

import dataclasses
import os

from detx.components.model_store import ModelStore

# `baseline` settings besides a path.
AUTO = "auto"  # the serving version of the push destination, looked up when the Evaluator runs
NONE = "none"  # no baseline: only the value threshold applies


class BaselineError(RuntimeError):
    """The baseline cannot be used; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The model in production.

    Attributes:
        version: its version number (None for a path given by hand).
        path: its SavedModel directory.
    """

    version: int | None
    path: str


def find_baseline(push_destination: str) -> Baseline | None:
    """The serving version of `push_destination`, or None before the first push."""
    if not push_destination:
        return None
    store = ModelStore(push_destination)
    version = store.serving_version()
    return Baseline(version, store.path(version)) if version is not None else None


def resolve(setting: str, push_destination: str) -> Baseline | None:
    """Turns the Evaluator's `baseline` setting into a model.

    Args:
        setting: "none"; "auto" (the version served from `push_destination`);
            a version directory inside `push_destination`, the one in production
            when the pipeline was built (the local runner passes it so that ML
            Metadata's cache key changes when production does; the version served
            now is used, in case production moved in between); or any other
            SavedModel directory, used as it is.
        push_destination: where pushed versions live.

    Returns:
        The baseline, or None when there is none.
    """
    if setting in ("", NONE):
        return None
    if setting == AUTO:
        return find_baseline(push_destination)
    if push_destination and os.path.dirname(os.path.normpath(setting)) == os.path.normpath(push_destination):
        return find_baseline(push_destination)
    return Baseline(None, setting)


def signature_names(saved_model_dir: str) -> list[str]:
    """The serving signatures of a SavedModel, read from its graph without loading variables."""
    from tensorflow.python.tools import saved_model_utils

    try:
        meta_graph = saved_model_utils.get_meta_graph_def(saved_model_dir, "serve")
    except (OSError, RuntimeError, ValueError) as e:
        raise BaselineError(f"cannot read the SavedModel at {saved_model_dir}: {e}") from e
    return sorted(meta_graph.signature_def.keys())
