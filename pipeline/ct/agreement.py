"""Offline/online agreement: each version's confidence on its eval split against its confidence on live traffic.

Live traffic has no labels, but the score profile (components/evaluation/
score_profile.py) is computed the same way on both sides: the Evaluator
stores it in the version's lineage (`score/top_mean`,
`score/detections_per_image` of the eval split) and `detx serve` logs it per
sampled image with the version and role that answered. A version whose live
mean top score is more than the tolerance away from its eval figure, either
way, disagrees: the data it meets is not the data it was judged on (lower),
or something between the client and the model changed what it sees (higher
as well as lower). The tolerance is `ct.max_score_drop` (20% by default), the
same relative margin the live-quality trigger allows below the eval figure,
so the served version's "disagrees, lower" and that trigger agree.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from detx.components.evaluation import score_profile
from detx.serving.model_server.request_log import LoggedImage

AGREES = "agrees"
DISAGREES = "disagrees"
TOO_FEW = "too few images"
NO_REFERENCE = "no eval figures"


@dataclasses.dataclass(frozen=True)
class VersionAgreement:
    """One version's eval-split confidence against its live confidence.

    Attributes:
        version: the version that answered.
        roles: logged images per role it answered as ("stable", "canary").
        live_images: logged images in all.
        live_top_score: mean top score over them.
        live_detections: mean count of detections scoring 0.5 or more per image.
        eval_top_score: the same on its eval split (lineage; None: not recorded or the version is gone).
        eval_detections: the same on its eval split (None: not recorded).
        tolerance: the relative difference of the top score allowed.
        min_images: logged images needed for a verdict.
    """

    version: int
    roles: dict[str, int]
    live_images: int
    live_top_score: float
    live_detections: float
    eval_top_score: float | None
    eval_detections: float | None
    tolerance: float
    min_images: int

    @property
    def difference(self) -> float | None:
        """(live - eval) / eval of the mean top score (None without an eval figure)."""
        if not self.eval_top_score:
            return None
        return (self.live_top_score - self.eval_top_score) / self.eval_top_score

    @property
    def verdict(self) -> str:
        """AGREES, DISAGREES, TOO_FEW or NO_REFERENCE."""
        if self.difference is None:
            return NO_REFERENCE
        if self.live_images < self.min_images:
            return TOO_FEW
        return AGREES if abs(self.difference) <= self.tolerance else DISAGREES

    def sentence(self) -> str:
        """E.g. `version 2 (stable 60, canary 20): live top score 0.46 vs 0.80 on the eval split (-43%; ...)`."""
        roles = ", ".join(f"{role} {n}" for role, n in sorted(self.roles.items()))
        head = f"version {self.version} ({roles}): {self.verdict}"
        live = f"live top score {self.live_top_score:.2f} over {self.live_images} images"
        if self.difference is None:
            return f"{head}: {live}; its eval split's figures are not in its lineage"
        figures = (
            f"{live} vs {self.eval_top_score:.2f} on the eval split "
            f"({self.difference:+.0%}; tolerance +-{self.tolerance:.0%})"
        )
        if self.eval_detections is not None:
            figures += f"; confident detections per image {self.live_detections:.2f} vs {self.eval_detections:.2f}"
        if self.verdict == TOO_FEW:
            figures += f"; fewer than the {self.min_images} images a verdict needs"
        return f"{head}: {figures}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the difference and the verdict."""
        return {**dataclasses.asdict(self), "difference": self.difference, "verdict": self.verdict}


def agreement(
    records: Iterable[LoggedImage],
    lineages: Mapping[int, Mapping[str, Any]],
    tolerance: float,
    min_images: int,
) -> list[VersionAgreement]:
    """One VersionAgreement per version in the request log, newest version first.

    Args:
        records: the request log's images (`request_log.read_log`).
        lineages: version -> its lineage (versions missing here have no eval figures).
        tolerance: relative difference of the mean top score allowed either way.
        min_images: logged images a version needs for a verdict.
    """
    by_version: dict[int, list[LoggedImage]] = collections.defaultdict(list)
    for r in records:
        by_version[r.version].append(r)
    out = []
    for version in sorted(by_version, reverse=True):
        logged = by_version[version]
        metrics = lineages.get(version, {}).get("metrics", {})
        top, detections = metrics.get(score_profile.TOP_SCORE), metrics.get(score_profile.DETECTIONS)
        out.append(
            VersionAgreement(
                version=version,
                roles=dict(collections.Counter(r.role for r in logged)),
                live_images=len(logged),
                live_top_score=sum(r.top_score for r in logged) / len(logged),
                live_detections=sum(r.confident for r in logged) / len(logged),
                eval_top_score=float(top) if top is not None else None,
                eval_detections=float(detections) if detections is not None else None,
                tolerance=tolerance,
                min_images=min_images,
            )
        )
    return out
