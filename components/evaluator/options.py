"""The Evaluator's settings and how they travel as exec properties (plain data: importing this does not import TFMA)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from detx.components.data import features as F

# The exec property with the options that are not run parameters, as JSON.
OPTIONS = "options"
# The fields that are run parameters (a KFP run form sets them): each is an exec
# property of its own, named as the field, and never inside the `options` JSON.
RUN_SETTINGS = ("min_map_50", "max_map_50_drop")


@dataclasses.dataclass(frozen=True)
class EvaluatorOptions:
    """When a model is good enough to push.

    Attributes:
        min_map_50: value threshold: mAP@0.5 on the eval split must be at least this.
        max_map_50_drop: change threshold: mAP@0.5 may be at most this much below
            the model in production (ignored on the first push, when there is none).
        slice_features: features to slice the metrics by, besides the whole split.
    """

    min_map_50: float = 0.3
    max_map_50_drop: float = 0.01
    slice_features: tuple[str, ...] = (F.NUM_OBJECTS,)

    def __post_init__(self) -> None:
        # JSON (TFX exec properties) brings the tuple back as a list.
        object.__setattr__(self, "slice_features", tuple(self.slice_features))
        if not 0.0 <= self.min_map_50 <= 1.0:
            raise ValueError(f"min_map_50 must be within [0, 1], got {self.min_map_50}")
        if not 0.0 <= self.max_map_50_drop <= 1.0:
            raise ValueError(f"max_map_50_drop must be within [0, 1], got {self.max_map_50_drop}")

    def exec_properties(self) -> dict[str, Any]:
        """DetectionEvaluator's exec properties: each of the `RUN_SETTINGS` on its own, the rest as `options` JSON."""
        values = dataclasses.asdict(self)
        rest = {k: v for k, v in values.items() if k not in RUN_SETTINGS}
        return {OPTIONS: json.dumps(rest, sort_keys=True), **{k: values[k] for k in RUN_SETTINGS}}

    @classmethod
    def from_exec_properties(cls, exec_properties: Mapping[str, Any]) -> EvaluatorOptions:
        """Reads the options back in the executor, each field from its one exec property.

        Raises:
            ValueError: the `options` JSON carries a run setting (it has exactly one channel).
        """
        rest = json.loads(exec_properties.get(OPTIONS) or "{}")
        carried = sorted(set(rest) & set(RUN_SETTINGS))
        if carried:
            raise ValueError(f"the options JSON must not carry the run setting(s) {', '.join(carried)}")
        return cls(
            **rest,
            min_map_50=float(exec_properties["min_map_50"]),
            max_map_50_drop=float(exec_properties["max_map_50_drop"]),
        )
