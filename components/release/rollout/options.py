"""How a progressive rollout is run and judged: the one home of its defaults (the CLI's flags derive from it)."""

from __future__ import annotations

import dataclasses
from typing import Any

# The stages a candidate goes through, in order; "full" is the promotion that ends a rollout.
SHADOW, CANARY = "shadow", "canary"
STAGES = (SHADOW, CANARY)


@dataclasses.dataclass(frozen=True)
class RolloutOptions:
    """Traffic shares, criteria and pace of a rollout (recorded in its state, so a restart judges alike).

    Attributes:
        shadow_percent: share of stable's requests mirrored to the candidate in the shadow stage (0 skips
            the stage). Default 10: mirroring costs the compute it mirrors, so 10% adds a tenth to the
            server's load; at 100 every request is compared and the stage ends ten times sooner.
        canary_percent: share of the requests naming no version that the candidate answers in the canary
            stage (0 skips the stage). Default 10: a tenth of clients see the candidate, and a failing one
            is judged on as many requests as in the shadow stage.
        min_requests: requests the candidate must answer in a stage before it passes. Default 200: the p99
            of 200 requests rests on its two slowest; one error is 0.5%, below the error-rate limit.
        max_error_rate_increase: how far the candidate's share of non-OK answers may be above stable's
            over the same stage. Default 0.01: a model version fails as a whole (a broken graph, a
            signature or label map that does not fit), which is far above 1%; client errors (a bad
            image) hit both versions alike and cancel out.
        max_p99_ratio: the candidate's p99 latency may be at most this multiple of stable's. Default 1.2:
            what a slower model costs every client at the tail; TF Serving's latency-sensitive users
            budget tails, not means.
        p99_slack_seconds: a p99 at most this much above stable's passes whatever the ratio. Default
            0.01: the server's latency histogram has bucket bounds 5 ms apart at the low end, so a
            smaller difference is below what the histogram can tell.
        min_agreement: shadow stage: the least share of detections both versions found (matched by
            class at IoU >= 0.5). Default 0.6: a retrained model is meant to differ from the old one, so
            1.0 is no goal; a broken one (wrong preprocessing, shuffled classes, boxes off) agrees
            with almost nothing.
        max_top_score_drop: the candidate's live mean top score may be at most this share below
            stable's on the same traffic. Default 0.1: both see the same images, so unlike `detx ct`'s
            live-against-eval comparison (ct.max_score_drop, 0.2) there is no data shift to allow for.
        poll_seconds: how often the signals are read. Default 5: a model server's metrics change
            per request, and a decision needs `min_requests` of them anyway.
    """

    shadow_percent: float = 10.0
    canary_percent: float = 10.0
    min_requests: int = 200
    max_error_rate_increase: float = 0.01
    max_p99_ratio: float = 1.2
    p99_slack_seconds: float = 0.01
    min_agreement: float = 0.6
    max_top_score_drop: float = 0.1
    poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.shadow_percent <= 100.0:
            raise ValueError(f"shadow_percent must be between 0 and 100, got {self.shadow_percent}")
        if not 0.0 <= self.canary_percent < 100.0:
            raise ValueError(
                f"canary_percent must be at least 0 and below 100 (stable's share is the reference), "
                f"got {self.canary_percent}"
            )
        if self.shadow_percent == 0.0 and self.canary_percent == 0.0:
            raise ValueError(
                "shadow_percent and canary_percent are both 0: no stage would judge the candidate; "
                "give one a share, or serve it at once with `detx rollout promote`"
            )
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {self.min_requests}")
        for name in ("max_error_rate_increase", "min_agreement", "max_top_score_drop"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.max_p99_ratio < 1.0:
            raise ValueError(f"max_p99_ratio must be at least 1 (1: no slower than stable), got {self.max_p99_ratio}")
        if self.p99_slack_seconds < 0.0 or self.poll_seconds <= 0.0:
            raise ValueError("p99_slack_seconds must be >= 0 and poll_seconds > 0")

    def stages(self) -> tuple[str, ...]:
        """The stages this rollout goes through (a stage with a 0% share is skipped)."""
        return tuple(s for s in STAGES if (self.shadow_percent if s == SHADOW else self.canary_percent) > 0.0)

    def to_json(self) -> dict[str, Any]:
        """The options as recorded in the rollout's state."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutOptions:
        """The options recorded in a state file (unknown keys are refused by the constructor)."""
        return cls(**data)
