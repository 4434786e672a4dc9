"""The Evaluator's verdict as a small JSON file beside the blessing: numbers, baseline, and why."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

REPORT_FILENAME = "detx_evaluation.json"


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    """What the Evaluator decided and on what grounds.

    Attributes:
        blessed: whether the candidate may be pushed.
        reasons: one sentence per failed threshold (empty when blessed).
        metrics: the candidate's overall metrics (map, map_50, map_75, ar_100, ap/<class>, example_count).
        baseline_version: the version in production it was compared with (None: first push).
        baseline_path: that version's directory.
        baseline_metrics: its metrics on the same examples.
        min_map_50: the value threshold.
        max_map_50_drop: the change threshold.
        slices: per slice (e.g. "detx/stats/num_objects=3"), the candidate's map_50 and example count.
        baseline_slices: the same for the model in production, on the same examples ({} without one).
        slice_floors: per configured floor ("class 'circle'", "small objects (...)"): the metric, its
            value, the floor, the boxes behind it and the status (passed, failed, or not judged for
            want of boxes).
        simpler_reference: the simpler model scored beside the candidate ("none", "box_prior").
        reference_metrics: its overall metrics on the same examples ({} without one).
        margin: the candidate's mAP@0.5 minus the reference's (None without one).
        min_margin: the margin the candidate needed (None without a reference).
    """

    blessed: bool
    reasons: list[str]
    metrics: dict[str, float]
    baseline_version: int | None
    baseline_path: str | None
    baseline_metrics: dict[str, float]
    min_map_50: float
    max_map_50_drop: float
    slices: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    baseline_slices: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    slice_floors: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    simpler_reference: str = "none"
    reference_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    margin: float | None = None
    min_margin: float | None = None

    def write(self, directory: str) -> str:
        """Writes the report into `directory` and returns its path."""
        path = os.path.join(directory, REPORT_FILENAME)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True))
        return path

    @classmethod
    def read(cls, directory: str) -> EvaluationReport:
        """Reads the report of a blessing artifact directory."""
        with tf.io.gfile.GFile(os.path.join(directory, REPORT_FILENAME)) as f:
            data: dict[str, Any] = json.load(f)
        return cls(**data)

    def verdict(self) -> str:
        """One line: blessed or not, against what, and why."""
        value = self.metrics.get("map_50", float("nan"))
        base = self.baseline_metrics.get("map_50", float("nan"))
        if self.baseline_version is not None:
            against = f"production version {self.baseline_version} (mAP@0.5 {base:.3f})"
        elif self.baseline_path:
            against = f"the baseline model {self.baseline_path} (mAP@0.5 {base:.3f})"
        else:
            against = "no model in production yet (value threshold only)"
        if self.blessed:
            return f"blessed: mAP@0.5 {value:.3f} >= {self.min_map_50:.2f}, compared with {against}" + "".join(
                f"; {part}" for part in self._extra_checks()
            )
        return "not blessed: " + "; ".join(self.reasons)

    def _extra_checks(self) -> list[str]:
        """The slice floors' and the simpler reference's outcome, when they were asked for."""
        parts = []
        if self.slice_floors:
            counts: dict[str, int] = {}
            for result in self.slice_floors.values():
                counts[result["status"]] = counts.get(result["status"], 0) + 1
            # Any status but passed and failed is a floor not judged: its class or size has no box.
            named = {status: status if status in ("passed", "failed") else "without boxes" for status in counts}
            parts.append("slice floors: " + ", ".join(f"{n} {named[status]}" for status, n in counts.items()))
        if self.margin is not None:
            parts.append(f"{self.margin:+.3f} above the simpler reference ({self.simpler_reference})")
        return parts
