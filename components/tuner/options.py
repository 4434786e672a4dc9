"""The Tuner's settings (config file section `tuner`)."""

from __future__ import annotations

import dataclasses
from typing import Any

# The `tuning` run parameter's values.
ON, OFF = "on", "off"
TUNING_MODES = (OFF, ON)

# What a trial is scored by, and which way is better: COCO mAP@0.5 on the eval split (the Evaluator's
# measure), or the SSD loss there (cls + loc, no L2), which still tells settings apart after a few
# dozen steps, where mAP is near 0 for all of them.
OBJECTIVES = {"map_50": "max", "eval_loss": "min"}


@dataclasses.dataclass(frozen=True)
class TunerOptions:
    """What the Tuner searches with.

    Attributes:
        enabled: run the search before the Trainer. Off by default: it trains
            `max_trials` extra short models. On Kubeflow it is the `tuning`
            run parameter.
        max_trials: trials in all, the untuned baseline (the first) included.
        trial_steps: training steps of each trial, on the train split; each is
            then scored on the eval split.
        objective: "map_50" (COCO mAP@0.5, higher is better) or "eval_loss"
            (the SSD loss, lower is better; for budgets too short for mAP to move).
    """

    enabled: bool = False
    max_trials: int = 6
    trial_steps: int = 200
    objective: str = "map_50"

    def __post_init__(self) -> None:
        if self.max_trials < 2:
            raise ValueError(
                "tuner.max_trials must be 2 or more (the untuned baseline and at least one choice), "
                f"got {self.max_trials}"
            )
        if self.trial_steps < 1:
            raise ValueError(f"tuner.trial_steps must be a positive number of steps, got {self.trial_steps}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown tuner.objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")

    @property
    def mode(self) -> str:
        """The `tuning` run parameter's value for `enabled`."""
        return ON if self.enabled else OFF

    def to_custom_config(self) -> dict[str, Any]:
        """The budget, for the Tuner's `custom_config` (`enabled` is the run parameter, not in here)."""
        return {"max_trials": self.max_trials, "trial_steps": self.trial_steps, "objective": self.objective}
