"""Judging a stage: pure functions over the counts a stage added (error rate, p99, agreement, live confidence).

The controller subtracts the cumulative counts it saw when the stage started
from the counts now (`subtract`), and `judge` decides on that difference:

- hold while the candidate answered fewer than `min_requests` in the stage
  (but fail at once when its errors already exceed what `min_requests` allows);
- fail when any measured criterion fails, naming each one with its figures;
- pass otherwise. A criterion the source cannot measure (TF Serving in a
  cluster reports no scores and compares nothing) is printed as "not measured"
  and does not decide.
"""

from __future__ import annotations

import dataclasses
import math

from detx.components.release.rollout.options import SHADOW, RolloutOptions
from detx.components.release.rollout.signals import EMPTY_HISTOGRAM, Counts, Histogram, ShadowCounts, VersionCounts

OK = "OK"
HOLD, PASS, FAIL = "hold", "pass", "fail"


def _subtract_histogram(now: Histogram | None, then: Histogram | None) -> Histogram | None:
    if now is None or then is None:
        return now
    if not then.buckets:
        return now
    if not now.buckets:
        # The series vanished: nothing was observed since (a restarted server shows as negative counts).
        return Histogram(tuple((le, -c) for le, c in then.buckets), -then.sum, -then.count)
    if [le for le, _ in now.buckets] != [le for le, _ in then.buckets]:
        raise ValueError("the histogram's buckets changed between two readings; start the stage again")
    buckets = tuple((le, c - c0) for (le, c), (_, c0) in zip(now.buckets, then.buckets, strict=True))
    return Histogram(buckets, now.sum - then.sum, now.count - then.count)


def _subtract_version(now: VersionCounts, then: VersionCounts) -> VersionCounts:
    codes = set(now.answers) | set(then.answers)
    return VersionCounts(
        answers={c: now.answers.get(c, 0.0) - then.answers.get(c, 0.0) for c in sorted(codes)},
        latency=_subtract_histogram(now.latency, then.latency),
        top_score=_subtract_histogram(now.top_score, then.top_score),
    )


# Counts before anything was answered: the baseline after a server restarted.
NOTHING_YET = Counts(
    stable=VersionCounts({}, EMPTY_HISTOGRAM, EMPTY_HISTOGRAM),
    canary=VersionCounts({}, EMPTY_HISTOGRAM, EMPTY_HISTOGRAM),
    shadow=VersionCounts({}, EMPTY_HISTOGRAM, EMPTY_HISTOGRAM),
    comparisons=None,
)


def subtract(now: Counts, then: Counts) -> Counts:
    """What happened between two readings of cumulative counts (`now` minus `then`).

    Raises:
        ValueError: a histogram's buckets changed (another server build answered).
    """
    comparisons = now.comparisons
    if now.comparisons is not None and then.comparisons is not None:
        comparisons = ShadowCounts(
            **{f.name: getattr(now.comparisons, f.name) - getattr(then.comparisons, f.name) for f in _shadow_fields()}
        )
    return Counts(
        stable=_subtract_version(now.stable, then.stable),
        canary=_subtract_version(now.canary, then.canary),
        shadow=_subtract_version(now.shadow, then.shadow),
        comparisons=comparisons,
    )


def _shadow_fields() -> tuple[dataclasses.Field[float], ...]:
    return dataclasses.fields(ShadowCounts)


def went_back(delta: Counts) -> bool:
    """Whether a count fell between the readings: the server restarted and its counters began again."""
    values: list[float] = []
    for version in (delta.stable, delta.canary, delta.shadow):
        values.extend(version.answers.values())
        for histogram in (version.latency, version.top_score):
            if histogram is not None:
                values.append(histogram.count)
    if delta.comparisons is not None:
        values.extend(getattr(delta.comparisons, f.name) for f in _shadow_fields())
    return any(v < 0 for v in values)


def histogram_quantile(q: float, histogram: Histogram) -> float:
    """The q-quantile of a cumulative histogram, interpolated as Prometheus' `histogram_quantile` does.

    As promql/quantile.go `bucketQuantile` (prometheus/prometheus): linear
    interpolation inside the bucket where the rank q * count falls, from 0 for
    the lowest bucket; a rank in the +Inf bucket gives the highest finite
    bound; NaN without observations. E.g. buckets (0.1: 50, 0.2: 100, +Inf:
    100): the p99 rank is 99, in the (0.1, 0.2] bucket, 49 of its 50 -> 0.198.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, got {q}")
    buckets = sorted(histogram.buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    # Counts never fall with a higher bound; floating sums can make them seem to (Prometheus' ensureMonotonic).
    monotonic: list[tuple[float, float]] = []
    highest = -math.inf
    for le, count in buckets:
        highest = max(highest, count)
        monotonic.append((le, highest))
    observations = monotonic[-1][1]
    if observations <= 0:
        return math.nan
    rank = q * observations
    b = next((i for i, (_, count) in enumerate(monotonic[:-1]) if count >= rank), len(monotonic) - 1)
    if b == len(monotonic) - 1:
        return monotonic[-2][0]
    if b == 0 and monotonic[0][0] <= 0:
        return monotonic[0][0]
    start, end, count = 0.0, monotonic[b][0], monotonic[b][1]
    if b > 0:
        start = monotonic[b - 1][0]
        count -= monotonic[b - 1][1]
        rank -= monotonic[b - 1][1]
    return start + (end - start) * (rank / count)


def answered(version: VersionCounts) -> float:
    """Requests answered, whatever the code."""
    return sum(version.answers.values())


def error_rate(version: VersionCounts) -> float:
    """The share of answers that were not OK (0 without answers)."""
    total = answered(version)
    return 0.0 if total <= 0 else (total - version.answers.get(OK, 0.0)) / total


def agreement(comparisons: ShadowCounts) -> float:
    """The share of detections both sides found: matched / (matched + only_stable + only_candidate), 1.0 for none."""
    total = comparisons.matched + comparisons.only_stable + comparisons.only_candidate
    return 1.0 if total <= 0 else comparisons.matched / total


@dataclasses.dataclass(frozen=True)
class Figure:
    """One criterion's reading.

    Attributes:
        name: "error rate", "p99 latency", "agreement", "mean top score".
        passed: True or False; None when not measured (it does not decide).
        text: the figures, for the printed decision, e.g. "0.0% (stable 0.0%; limit 1.0%)".
    """

    name: str
    passed: bool | None
    text: str

    def line(self) -> str:
        """The figure as a printed line."""
        verdict = {True: "ok", False: "FAILS", None: "not measured"}[self.passed]
        return f"{self.name}: {self.text} -> {verdict}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a stage's counts say.

    Attributes:
        outcome: "hold" (too few requests yet), "pass" or "fail".
        judged: requests the candidate answered in the stage.
        needed: `min_requests`.
        figures: every criterion's reading.
        reason: for a failure, the failing criteria; else a summary.
    """

    outcome: str
    judged: int
    needed: int
    figures: tuple[Figure, ...]
    reason: str


def _error_figure(candidate: VersionCounts, stable: VersionCounts, options: RolloutOptions) -> tuple[Figure, float]:
    rate, reference = error_rate(candidate), error_rate(stable)
    limit = reference + options.max_error_rate_increase
    errors = answered(candidate) - candidate.answers.get(OK, 0.0)
    text = f"{rate:.1%} ({errors:.0f} of {answered(candidate):.0f}; stable {reference:.1%}; limit {limit:.1%})"
    return Figure("error rate", rate <= limit + 1e-12, text), limit


def _p99_figure(candidate: VersionCounts, stable: VersionCounts, options: RolloutOptions, where: str) -> Figure:
    if candidate.latency is None or stable.latency is None:
        return Figure("p99 latency", None, f"{where} reports no per-version latency")
    mine, theirs = histogram_quantile(0.99, candidate.latency), histogram_quantile(0.99, stable.latency)
    if math.isnan(mine) or math.isnan(theirs):
        return Figure("p99 latency", None, "no latency observed yet on one side")
    ratio = mine / theirs if theirs > 0 else math.inf
    ok = ratio <= options.max_p99_ratio or mine - theirs <= options.p99_slack_seconds
    text = (
        f"{mine * 1000:.1f} ms (stable {theirs * 1000:.1f} ms, {ratio:.2f}x; "
        f"limit {options.max_p99_ratio:.2f}x or +{options.p99_slack_seconds * 1000:.0f} ms)"
    )
    return Figure("p99 latency", ok, text)


def _agreement_figure(comparisons: ShadowCounts | None, options: RolloutOptions, where: str) -> Figure:
    if comparisons is None:
        return Figure("agreement", None, f"{where} does not compare the candidate's answers with stable's")
    value = agreement(comparisons)
    text = (
        f"{value:.2f} over {comparisons.compared:.0f} compared requests ({comparisons.matched:.0f} detections "
        f"matched, {comparisons.only_stable:.0f} only stable's, {comparisons.only_candidate:.0f} only the "
        f"candidate's; {comparisons.dropped:.0f} not mirrored, queue full); limit {options.min_agreement:.2f}"
    )
    return Figure("agreement", value >= options.min_agreement, text)


def _score_figure(candidate: VersionCounts, stable: VersionCounts, options: RolloutOptions, where: str) -> Figure:
    if candidate.top_score is None or stable.top_score is None:
        return Figure("mean top score", None, f"{where} reports no detection scores")
    if candidate.top_score.count <= 0 or stable.top_score.count <= 0:
        return Figure("mean top score", None, "no image scored yet on one side")
    mine = candidate.top_score.sum / candidate.top_score.count
    theirs = stable.top_score.sum / stable.top_score.count
    drop = (theirs - mine) / theirs if theirs > 0 else 0.0
    text = f"{mine:.3f} (stable {theirs:.3f}, {-drop:+.1%}; limit -{options.max_top_score_drop:.0%})"
    return Figure("mean top score", drop <= options.max_top_score_drop + 1e-12, text)


def judge(stage: str, delta: Counts, options: RolloutOptions, where: str = "this source") -> Verdict:
    """Decides a stage on what it added: hold, pass or fail, with every figure.

    Args:
        stage: "shadow" (the candidate's mirrored answers against stable's, and their agreement) or
            "canary" (its answers to clients against stable's).
        delta: the counts since the stage started (`subtract`).
        options: the criteria.
        where: the signal source's name, for "not measured" lines.
    """
    candidate = delta.shadow if stage == SHADOW else delta.canary
    judged = int(answered(candidate))
    errors, limit = _error_figure(candidate, delta.stable, options)
    figures = [errors, _p99_figure(candidate, delta.stable, options, where)]
    if stage == SHADOW:
        figures.append(_agreement_figure(delta.comparisons, options, where))
    figures.append(_score_figure(candidate, delta.stable, options, where))
    failed = [f for f in figures if f.passed is False]
    error_count = answered(candidate) - candidate.answers.get(OK, 0.0)
    if judged < options.min_requests:
        # Errors beyond what min_requests allows cannot be outgrown by the requests still to come.
        if error_count > limit * options.min_requests:
            return Verdict(FAIL, judged, options.min_requests, tuple(figures), f"error rate: {errors.text}")
        return Verdict(HOLD, judged, options.min_requests, tuple(figures), f"{judged} of {options.min_requests}")
    if failed:
        reason = "; ".join(f"{f.name}: {f.text}" for f in failed)
        return Verdict(FAIL, judged, options.min_requests, tuple(figures), reason)
    measured = ", ".join(f.name for f in figures if f.passed)
    return Verdict(PASS, judged, options.min_requests, tuple(figures), f"{measured} within limits")
