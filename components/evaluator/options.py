"""The Evaluator's settings (plain data: importing this does not import TFMA)."""

from __future__ import annotations

import dataclasses

from detx.components.data import features as F


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
