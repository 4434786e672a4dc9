"""What a rollout reads and where it acts: cumulative counts from a signal source, and the target that applies a split.

A signal source answers with **cumulative** counts (as Prometheus counters
are): every request answered since the server started, per role. The
controller keeps the counts it saw when a stage started (in its state file) and
judges the difference, so a restarted `detx rollout` continues where it was and
a server's earlier traffic does not count.

Two sources exist: `ServerMetricsSource` (a local `detx serve`'s /metrics) and
`PrometheusSource` (TF Serving's own metrics in a cluster, which cannot measure
live confidence or compare mirrored answers: those counts are None). Two
targets: `LocalTarget` (`detx_traffic.json` at the push destination) and
`KubernetesTarget` (the rollout overlay's pins and route weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from detx.components.release.traffic import TrafficSplit


class SignalError(RuntimeError):
    """A source could not be read (unreachable, or not what it should be); the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Histogram:
    """A cumulative histogram, Prometheus style.

    A histogram with no buckets (`Histogram((), 0, 0)`) is one the source can
    measure but that has observed nothing yet (the series does not exist yet).

    Attributes:
        buckets: (upper bound `le`, cumulative count of observations <= le), ascending; the last le is inf.
        sum: the sum of all observations.
        count: the number of observations (equals the inf bucket's count).
    """

    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float


# Measurable, nothing observed yet.
EMPTY_HISTOGRAM = Histogram(buckets=(), sum=0.0, count=0.0)


@dataclasses.dataclass(frozen=True)
class VersionCounts:
    """What one version answered in one role.

    Attributes:
        answers: gRPC code name ("OK", "INTERNAL", ...) -> requests answered with it.
        latency: the model's time per request, in seconds (None: not measured by this source).
        top_score: each answered image's top detection score (None: this source cannot measure it,
            e.g. TF Serving in a cluster).
    """

    answers: Mapping[str, float]
    latency: Histogram | None
    top_score: Histogram | None


@dataclasses.dataclass(frozen=True)
class ShadowCounts:
    """Mirrored requests and how the candidate's detections compared with stable's.

    Attributes:
        compared: mirrored requests both versions answered and that were compared.
        failed: mirrored requests the candidate failed.
        dropped: requests not mirrored because the mirror queue was full.
        matched: detections matched one to one by class at IoU >= 0.5.
        only_stable: stable's detections the candidate did not find.
        only_candidate: the candidate's detections stable did not find.
    """

    compared: float
    failed: float
    dropped: float
    matched: float
    only_stable: float
    only_candidate: float


@dataclasses.dataclass(frozen=True)
class Counts:
    """Cumulative counts for one traffic split.

    Attributes:
        stable: the stable version (role stable).
        canary: the candidate answering clients (role canary).
        shadow: the candidate on mirrored requests (role shadow).
        comparisons: mirror comparisons (None: this source cannot compare, e.g. in a cluster).
    """

    stable: VersionCounts
    canary: VersionCounts
    shadow: VersionCounts
    comparisons: ShadowCounts | None


class SignalSource(Protocol):
    """Where a rollout reads its signals."""

    def counts(self, split: TrafficSplit) -> Counts:
        """The cumulative counts for the split's stable version and candidate.

        Raises:
            SignalError: the source cannot be read.
        """
        ...

    def describe(self) -> str:
        """One line naming the source, for printed decisions."""
        ...


class Target(Protocol):
    """Where a traffic split is applied."""

    def apply(self, split: TrafficSplit | None) -> str:
        """Applies `split` (None: stable alone, the latest-version policy); returns what changed, for the decision."""
        ...

    def current(self) -> TrafficSplit | None:
        """The split applied now (None: none pinned)."""
        ...

    def describe(self) -> str:
        """One line naming the target, for printed decisions."""
        ...
