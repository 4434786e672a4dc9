"""The Evaluator's settings and how they travel as exec properties (plain data: importing this does not import TFMA)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from detx.components.data import features as F
from detx.components.evaluation.cocoeval_match import SIZES

# `simpler_reference` settings.
NO_REFERENCE = "none"
BOX_PRIOR = "box_prior"  # components/evaluation/box_prior.py, fitted on the train split of the same examples
REFERENCES = (NO_REFERENCE, BOX_PRIOR)
# The key of `class_ap_floors` that stands for every class not named.
EVERY_CLASS = "*"

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
        class_ap_floors: class name (or "*" for every class not named) to the
            lowest AP@0.5 that class may have on the eval split. A class with no
            box in the split is not judged. Default: none.
        area_ap_floors: "small", "medium" or "large" (COCO's object sizes: area
            up to 32², 32² to 96², above 96² pixels) to the lowest mAP@0.5 over
            objects of that size. A size with no box in the split is not judged.
            Default: none.
        simpler_reference: "none", or "box_prior": also score a detector that
            ignores the pixels (the train split's most frequent boxes per class)
            on the same eval split, and report the candidate's margin over it.
        min_margin: with a simpler reference, the candidate's mAP@0.5 must be at
            least this much above the reference's.
    """

    min_map_50: float = 0.3
    max_map_50_drop: float = 0.01
    slice_features: tuple[str, ...] = (F.NUM_OBJECTS,)
    class_ap_floors: dict[str, float] = dataclasses.field(default_factory=dict)
    area_ap_floors: dict[str, float] = dataclasses.field(default_factory=dict)
    simpler_reference: str = NO_REFERENCE
    min_margin: float = 0.0

    def __post_init__(self) -> None:
        # JSON (TFX exec properties) brings the tuple back as a list.
        object.__setattr__(self, "slice_features", tuple(self.slice_features))
        for field in ("class_ap_floors", "area_ap_floors"):
            floors = getattr(self, field)
            if not isinstance(floors, Mapping):
                raise ValueError(f"{field} must be a mapping of name to floor, got {floors!r}")
            object.__setattr__(self, field, {str(k): _floor(field, k, v) for k, v in floors.items()})
        unknown = sorted(set(self.area_ap_floors) - set(SIZES))
        if unknown:
            raise ValueError(f"area_ap_floors: unknown size(s) {', '.join(unknown)}; use {', '.join(SIZES)}")
        if self.simpler_reference not in REFERENCES:
            raise ValueError(
                f"simpler_reference must be one of {', '.join(REFERENCES)}, got {self.simpler_reference!r}"
            )
        if not -1.0 <= self.min_margin <= 1.0:
            raise ValueError(f"min_margin must be within [-1, 1], got {self.min_margin}")
        if not 0.0 <= self.min_map_50 <= 1.0:
            raise ValueError(f"min_map_50 must be within [0, 1], got {self.min_map_50}")
        if not 0.0 <= self.max_map_50_drop <= 1.0:
            raise ValueError(f"max_map_50_drop must be within [0, 1], got {self.max_map_50_drop}")

    def class_floors(self, class_names: Sequence[str]) -> dict[str, float]:
        """The AP@0.5 floor of each class of the label map that has one ("*" expanded).

        Raises:
            ValueError: a floor names a class the label map does not have.
        """
        unknown = sorted(set(self.class_ap_floors) - {EVERY_CLASS, *class_names})
        if unknown:
            raise ValueError(
                f"class_ap_floors names class(es) not in the label map: {', '.join(unknown)}; "
                f"the classes are {', '.join(class_names)} (or use {EVERY_CLASS!r} for every class)"
            )
        every = self.class_ap_floors.get(EVERY_CLASS)
        floors = {name: self.class_ap_floors.get(name, every) for name in class_names}
        return {name: floor for name, floor in floors.items() if floor is not None}

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


def _floor(field: str, name: object, value: object) -> float:
    """One floor of `class_ap_floors` or `area_ap_floors`, checked to be an AP."""
    try:
        floor = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{field}[{name!r}] must be a number within [0, 1], got {value!r}") from None
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"{field}[{name!r}] must be within [0, 1], got {floor}")
    return floor
