"""The traffic split of each stage, and splits in words for the printed decisions."""

from __future__ import annotations

from detx.components.release.rollout.options import CANARY, SHADOW, RolloutOptions
from detx.components.release.traffic import TrafficSplit


def describe_split(split: TrafficSplit | None) -> str:
    """A split in words, e.g. "stable 3, candidate 4: 10% of requests answered by it"."""
    if split is None:
        return "no pin (the newest version takes all traffic)"
    if split.candidate is None:
        return f"stable {split.stable} alone"
    shares = []
    if split.shadow_percent:
        shares.append(f"{split.shadow_percent:g}% of stable's requests mirrored to it")
    if split.canary_percent:
        shares.append(f"{split.canary_percent:g}% of requests answered by it")
    return f"stable {split.stable}, candidate {split.candidate}: {', '.join(shares) or 'loaded, no traffic'}"


def stage_split(stage: str, stable: int, candidate: int, options: RolloutOptions) -> TrafficSplit:
    """The traffic split of a stage."""
    if stage == SHADOW:
        return TrafficSplit(stable, candidate, shadow_percent=options.shadow_percent)
    if stage == CANARY:
        return TrafficSplit(stable, candidate, canary_percent=options.canary_percent)
    raise ValueError(f"no traffic split for stage {stage!r}")
