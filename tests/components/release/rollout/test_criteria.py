"""Judging a stage over constructed counts: histogram_quantile as Prometheus computes it, each criterion, hold."""

from __future__ import annotations

import math

import pytest

from detx.components.release.rollout import criteria
from detx.components.release.rollout.options import CANARY, SHADOW, RolloutOptions
from detx.components.release.rollout.signals import EMPTY_HISTOGRAM, Counts, Histogram, ShadowCounts, VersionCounts

INF = math.inf


def _latency(*seconds):
    """A cumulative histogram of these observations over the server's latency buckets."""
    from detx.serving.model_server.metrics import ANSWER_LATENCY_BUCKETS

    bounds = (*ANSWER_LATENCY_BUCKETS, INF)
    return Histogram(tuple((le, float(sum(s <= le for s in seconds))) for le in bounds), sum(seconds), len(seconds))


def _scores(*tops):
    bounds = (0.5, 1.0, INF)
    return Histogram(tuple((le, float(sum(s <= le for s in tops))) for le in bounds), sum(tops), len(tops))


def _version(ok, errors=0, seconds=0.02, top=0.8):
    return VersionCounts(
        {"OK": float(ok), **({"INTERNAL": float(errors)} if errors else {})},
        _latency(*([seconds] * ok)),
        _scores(*([top] * ok)),
    )


def _counts(stable, candidate, stage=SHADOW, comparisons=None):
    none = VersionCounts({}, EMPTY_HISTOGRAM, EMPTY_HISTOGRAM)
    return Counts(
        stable=stable,
        canary=candidate if stage == CANARY else none,
        shadow=candidate if stage == SHADOW else none,
        comparisons=comparisons,
    )


def _agreeing(n, matched=3, only_stable=0, only_candidate=0):
    return ShadowCounts(n, 0, 0, n * matched, n * only_stable, n * only_candidate)


OPTIONS = RolloutOptions(min_requests=100)


def test_histogram_quantile_interpolates_as_prometheus():
    # promql/quantile.go: rank 99 of 100 falls in (0.1, 0.2], which holds 50: 49/50 of the way.
    assert criteria.histogram_quantile(0.99, Histogram(((0.1, 50), (0.2, 100), (INF, 100)), 10, 100)) == pytest.approx(
        0.198
    )
    # The lowest bucket interpolates from 0.
    assert criteria.histogram_quantile(0.5, Histogram(((0.1, 100), (INF, 100)), 5, 100)) == pytest.approx(0.05)
    # A rank in the +Inf bucket gives the highest finite bound.
    assert criteria.histogram_quantile(0.99, Histogram(((0.1, 50), (0.2, 90), (INF, 100)), 50, 100)) == 0.2
    # Bounds in any order; counts forced monotonic (ensureMonotonic): (0.2, 40) counts as 50.
    assert criteria.histogram_quantile(0.5, Histogram(((INF, 100), (0.2, 40), (0.1, 50)), 1, 100)) == pytest.approx(0.1)
    assert math.isnan(criteria.histogram_quantile(0.99, Histogram(((0.1, 0), (INF, 0)), 0, 0)))
    assert math.isnan(criteria.histogram_quantile(0.99, EMPTY_HISTOGRAM))
    assert math.isnan(criteria.histogram_quantile(0.99, Histogram(((0.1, 5), (0.2, 5)), 0, 5)))  # no +Inf
    with pytest.raises(ValueError, match="between 0 and 1"):
        criteria.histogram_quantile(99, EMPTY_HISTOGRAM)


def test_subtract_takes_the_stage_difference_and_a_restart_shows_as_counts_going_back():
    then = _counts(_version(100), _version(40), comparisons=_agreeing(40))
    now = _counts(_version(300, errors=2), _version(140), comparisons=_agreeing(140, only_stable=1))
    delta = criteria.subtract(now, then)
    assert delta.stable.answers == {"OK": 200.0, "INTERNAL": 2.0}
    assert delta.shadow.latency is not None and delta.shadow.latency.count == 100
    assert delta.comparisons == ShadowCounts(100, 0, 0, 300, 140, 0)
    assert not criteria.went_back(delta)
    assert criteria.went_back(criteria.subtract(then, now))
    # Nothing exported yet at the baseline (the candidate had not answered): the counts now are the stage's.
    assert criteria.subtract(now, criteria.NOTHING_YET).shadow == now.shadow


def test_a_candidate_that_answers_like_stable_passes_after_min_requests_and_holds_before():
    delta = _counts(_version(150), _version(120), comparisons=_agreeing(120))
    verdict = criteria.judge(SHADOW, delta, OPTIONS)
    assert verdict.outcome == criteria.PASS and verdict.judged == 120
    assert [f.name for f in verdict.figures] == ["error rate", "p99 latency", "agreement", "mean top score"]
    assert all(f.passed for f in verdict.figures)
    held = criteria.judge(SHADOW, _counts(_version(50), _version(50), comparisons=_agreeing(50)), OPTIONS)
    assert held.outcome == criteria.HOLD and held.reason == "50 of 100"


def test_each_criterion_fails_with_its_figures():
    slow = criteria.judge(CANARY, _counts(_version(900), _version(100, seconds=0.045), CANARY), OPTIONS)
    assert slow.outcome == criteria.FAIL
    assert slow.reason.startswith("p99 latency: 49.8 ms (stable 19.9 ms, 2.50x; limit 1.20x or +10 ms)")
    # 5 ms slower than 20 ms is below the slack (the histogram cannot tell), whatever the ratio says.
    close = criteria.judge(CANARY, _counts(_version(900, seconds=0.015), _version(100, seconds=0.02), CANARY), OPTIONS)
    assert close.outcome == criteria.PASS
    disagreeing = criteria.judge(
        SHADOW, _counts(_version(100), _version(100), comparisons=_agreeing(100, 1, 1, 1)), OPTIONS
    )
    assert disagreeing.outcome == criteria.FAIL and disagreeing.reason.startswith("agreement: 0.33 over 100")
    unsure = criteria.judge(CANARY, _counts(_version(900, top=0.8), _version(100, top=0.6), CANARY), OPTIONS)
    assert unsure.outcome == criteria.FAIL
    assert unsure.reason == "mean top score: 0.600 (stable 0.800, -25.0%; limit -10%)"
    failing = criteria.judge(CANARY, _counts(_version(891, errors=9), _version(98, errors=2), CANARY), OPTIONS)
    assert failing.outcome == criteria.PASS  # 2.0% against stable's 1.0%: within +1%
    worse = criteria.judge(CANARY, _counts(_version(900), _version(97, errors=3), CANARY), OPTIONS)
    assert worse.outcome == criteria.FAIL and worse.reason == "error rate: 3.0% (3 of 100; stable 0.0%; limit 1.0%)"


def test_errors_beyond_what_min_requests_allows_fail_before_min_requests():
    verdict = criteria.judge(CANARY, _counts(_version(300), _version(5, errors=2), CANARY), OPTIONS)
    assert verdict.outcome == criteria.FAIL and verdict.judged == 7  # 2 errors > 1% of 100 already
    one = criteria.judge(CANARY, _counts(_version(300), _version(5, errors=1), CANARY), OPTIONS)
    assert one.outcome == criteria.HOLD


def test_what_a_source_cannot_measure_is_said_and_does_not_decide():
    blind = VersionCounts({"OK": 150.0}, _latency(*[0.02] * 150), None)
    delta = Counts(stable=blind, canary=blind, shadow=blind, comparisons=None)
    verdict = criteria.judge(SHADOW, delta, OPTIONS, where="Prometheus at http://p:9090")
    assert verdict.outcome == criteria.PASS
    lines = [f.line() for f in verdict.figures]
    assert lines[2] == (
        "agreement: Prometheus at http://p:9090 does not compare the candidate's answers with stable's -> not measured"
    )
    assert lines[3] == "mean top score: Prometheus at http://p:9090 reports no detection scores -> not measured"
    assert verdict.reason == "error rate, p99 latency within limits"
