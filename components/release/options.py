"""How blessed models are released (plain data, no TensorFlow): approval, rollout and what the model card says."""

from __future__ import annotations

import dataclasses

# "none": a blessed, infra-blessed model is served as soon as it is pushed.
# "required": it waits in the push destination's `.pending/` until `detx models approve`.
APPROVAL_MODES = ("none", "required")
# "none": a pushed version takes all traffic as soon as a model server loads it.
# "progressive": the Pusher pins the version served before (detx_traffic.json), so the new one
# takes no traffic until `detx rollout start` takes it through shadow, canary and full.
ROLLOUT_MODES = ("none", "progressive")


@dataclasses.dataclass(frozen=True)
class ReleaseOptions:
    """The `release` section of the config.

    Attributes:
        approval: "none" or "required" (see APPROVAL_MODES); a run parameter on Kubeflow.
        rollout: "none" or "progressive" (see ROLLOUT_MODES); approval, when required, comes first.
        intended_use: what the model is for, as the model card states it.
        limitations: what it is not for and where it is known to be weak.
    """

    approval: str = "none"
    rollout: str = "none"
    intended_use: str = (
        "Detecting the labelled object classes in images like those of the training data "
        "(same cameras, scenes and image sizes)."
    )
    limitations: str = (
        "Not evaluated on data unlike the eval split; quality on classes and object sizes with few "
        "eval examples is uncertain (see the per-class and per-slice metrics); not for decisions "
        "about people without human review."
    )

    def __post_init__(self) -> None:
        if self.approval not in APPROVAL_MODES:
            raise ValueError(f"release.approval must be one of {', '.join(APPROVAL_MODES)}, got {self.approval!r}")
        if self.rollout not in ROLLOUT_MODES:
            raise ValueError(f"release.rollout must be one of {', '.join(ROLLOUT_MODES)}, got {self.rollout!r}")
