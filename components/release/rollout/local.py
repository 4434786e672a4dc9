"""A rollout against a local `detx serve`: the split in `detx_traffic.json`, the counts from the server's /metrics.

`detx serve` re-reads `detx_traffic.json` on every poll of the push
destination, so writing the file changes traffic on the running server. Its
/metrics page (Prometheus' text format) carries per-version answers, latency
and top scores by role, and the mirror's comparisons (the names are
components/release/traffic_metrics.py's constants: one home).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from detx.components.release import traffic_metrics
from detx.components.release.rollout.signals import (
    EMPTY_HISTOGRAM,
    Counts,
    Histogram,
    ShadowCounts,
    SignalError,
    VersionCounts,
)
from detx.components.release.rollout.splits import describe_split
from detx.components.release.traffic import TrafficSplit, read_traffic, traffic_path, write_traffic

_TIMEOUT_SECONDS = 10.0


class LocalTarget:
    """Applies splits by writing the push destination's `detx_traffic.json`.

    Args:
        push_destination: the model base path `detx serve` serves.
    """

    def __init__(self, push_destination: str) -> None:
        self.push_destination = push_destination

    def apply(self, split: TrafficSplit | None) -> str:
        """Pins `split` (None: removes the pin); returns the change in words."""
        before = read_traffic(self.push_destination)
        write_traffic(self.push_destination, split)
        if before == split:
            return f"{traffic_path(self.push_destination)} unchanged: {describe_split(split)}"
        return f"{traffic_path(self.push_destination)}: {describe_split(before)} -> {describe_split(split)}"

    def current(self) -> TrafficSplit | None:
        """The split pinned now."""
        return read_traffic(self.push_destination)

    def describe(self) -> str:
        """The file, which `detx serve` follows."""
        return traffic_path(self.push_destination)


class _Histograms:
    """Cumulative histogram samples of one metric, by label tuple."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
        self.sums: dict[tuple[str, ...], float] = {}
        self.counts: dict[tuple[str, ...], float] = {}

    def get(self, key: tuple[str, ...]) -> Histogram:
        if key not in self.buckets:
            return EMPTY_HISTOGRAM
        buckets = tuple(sorted(self.buckets[key].items()))
        return Histogram(buckets, self.sums.get(key, 0.0), self.counts.get(key, buckets[-1][1]))


class ServerMetricsSource:
    """Counts from a `detx serve` /metrics page.

    Args:
        metrics_url: e.g. http://127.0.0.1:8502/metrics (`detx serve --metrics-port`).
        model: the served model's name (its `model` label; several models may share a page).
    """

    def __init__(self, metrics_url: str, model: str) -> None:
        self.metrics_url = metrics_url
        self.model = model

    def describe(self) -> str:
        """The page it reads."""
        return f"detx serve metrics at {self.metrics_url}"

    def _page(self) -> str:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=_TIMEOUT_SECONDS) as response:
                text: str = response.read().decode("utf-8")
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise SignalError(
                f"cannot read {self.metrics_url} ({reason}); is `detx serve --metrics-port PORT` running there?"
            ) from None
        return text

    def counts(self, split: TrafficSplit) -> Counts:
        """The cumulative counts of the split's stable version and candidate.

        Raises:
            SignalError: the page cannot be read, or it is not a detx serve's with per-version answers.
        """
        if split.candidate is None:
            raise ValueError("a split without a candidate has nothing to judge")
        answers: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        latency, top_score = _Histograms(), _Histograms()
        shadow: dict[tuple[str, ...], float] = defaultdict(float)
        families = set()
        # Sample names as prometheus_client writes them (prometheus_client/exposition.py): a Counter X
        # as X_total, a Histogram X as X_bucket{le=...}, X_sum and X_count; `le` "+Inf" parses as inf.
        for family in text_string_to_metric_families(self._page()):
            families.add(family.name)
            for sample in family.samples:
                labels: dict[str, Any] = sample.labels
                if labels.get("model") != self.model:
                    continue
                self._collect(sample.name, labels, float(sample.value), answers, latency, top_score, shadow)
        if traffic_metrics.ANSWERS not in families:
            raise SignalError(
                f"{self.metrics_url} has no {traffic_metrics.ANSWERS}: not a detx serve with traffic splits"
            )
        stable, candidate = str(split.stable), str(split.candidate)

        def version(number: str, role: str) -> VersionCounts:
            key = (number, role)
            return VersionCounts(answers.get(key, {}), latency.get(key), top_score.get(key))

        pair = (stable, candidate)
        return Counts(
            stable=version(stable, traffic_metrics.ROLE_STABLE),
            canary=version(candidate, traffic_metrics.ROLE_CANARY),
            shadow=version(candidate, traffic_metrics.ROLE_SHADOW),
            comparisons=ShadowCounts(
                compared=shadow[(*pair, traffic_metrics.OUTCOME_COMPARED)],
                failed=shadow[(*pair, traffic_metrics.OUTCOME_FAILED)],
                dropped=shadow[(*pair, traffic_metrics.OUTCOME_DROPPED)],
                matched=shadow[(*pair, traffic_metrics.KIND_MATCHED)],
                only_stable=shadow[(*pair, traffic_metrics.KIND_ONLY_STABLE)],
                only_candidate=shadow[(*pair, traffic_metrics.KIND_ONLY_CANDIDATE)],
            ),
        )

    @staticmethod
    def _collect(
        name: str,
        labels: dict[str, Any],
        value: float,
        answers: dict[tuple[str, ...], dict[str, float]],
        latency: _Histograms,
        top_score: _Histograms,
        shadow: dict[tuple[str, ...], float],
    ) -> None:
        m = traffic_metrics
        if name == f"{m.ANSWERS}_total":
            answers[(labels["version"], labels["role"])][labels["code"]] = value
        elif name == f"{m.SHADOW_REQUESTS}_total":
            shadow[(labels["stable"], labels["candidate"], labels["outcome"])] += value
        elif name == f"{m.SHADOW_DETECTIONS}_total":
            shadow[(labels["stable"], labels["candidate"], labels["kind"])] += value
        for metric, histograms in ((m.ANSWER_LATENCY, latency), (m.TOP_SCORE, top_score)):
            if not name.startswith(metric + "_"):
                continue
            key = (labels["version"], labels["role"])
            suffix = name[len(metric) + 1 :]
            if suffix == "bucket":
                histograms.buckets[key][float(labels["le"])] = value
            elif suffix == "sum":
                histograms.sums[key] = value
            elif suffix == "count":
                histograms.counts[key] = value
