"""Prometheus metrics of the model server: requests, errors, latency, loaded versions, warm-ups, rollouts, NaN/Inf.

The progressive-delivery metrics (issue 16) are named in
components/release/traffic_metrics.py, which `detx rollout` reads them through
too. prometheus_client exposes a Counter named `X` as the sample `X_total`, and
a Histogram `X` as `X_bucket`, `X_sum` and `X_count`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from detx.components.evaluation.detections import Matching
from detx.components.release.traffic_metrics import (
    ANSWER_LATENCY,
    ANSWERS,
    KIND_MATCHED,
    KIND_ONLY_CANDIDATE,
    KIND_ONLY_STABLE,
    ROLE_CANARY,
    ROLE_SHADOW,
    SHADOW_DETECTIONS,
    SHADOW_PENDING,
    SHADOW_REQUESTS,
    SHADOW_SCORE_DIFFERENCE,
    SPLIT,
    TOP_SCORE,
)

# Answered images whose detection scores or boxes hold NaN or Inf: model, version, role (issue 19).
NON_FINITE = "detx_serving_non_finite_outputs"

# Fine enough below a second that a p99 ratio between two versions is not decided by bucket width.
ANSWER_LATENCY_BUCKETS = (
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
TOP_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05 .. 1.0
SCORE_DIFFERENCE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A warm-up replays up to 1000 requests: from a fraction of a second to minutes.
_WARMUP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 1200.0)


class ServerMetrics:
    """The server's metrics, in a registry of its own (several servers can share a process in tests)."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        self._model = model_name
        self.requests = Counter(
            "detx_serving_requests",
            "gRPC requests by method and status code",
            ["model", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "detx_serving_request_latency_seconds",
            "gRPC request latency",
            ["model", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "detx_serving_batch_size",
            "rows per batch run by dynamic batching",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.versions = Gauge(
            "detx_serving_model_version_state",
            "1 for each version in each state (TF Serving's state names)",
            ["model", "version", "state"],
            registry=self.registry,
        )
        # TF Serving's /tensorflow/serving/model_warmup_latency is labelled with the outcome too
        # (saved_model_warmup_util.cc); versions without a warm-up file are not observed, as there.
        self.warmup_latency = Histogram(
            "detx_serving_warmup_seconds",
            "wall time of each warm-up replay, by outcome (OK or the failure's code)",
            ["model", "status"],
            buckets=_WARMUP_BUCKETS,
            registry=self.registry,
        )
        self.warmup_records = Counter(
            "detx_serving_warmup_records",
            "warm-up records replayed (each record once, whatever the iterations)",
            ["model"],
            registry=self.registry,
        )
        self.answers = Counter(
            ANSWERS,
            "Predict requests answered, by the version that answered, its role and the gRPC code",
            ["model", "version", "role", "code"],
            registry=self.registry,
        )
        self.answer_latency = Histogram(
            ANSWER_LATENCY,
            "the model's time for each request, by version and role (shadow: the mirrored run)",
            ["model", "version", "role"],
            buckets=ANSWER_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.top_score = Histogram(
            TOP_SCORE,
            "each answered image's top detection score (0: no detection), by version and role",
            ["model", "version", "role"],
            buckets=TOP_SCORE_BUCKETS,
            registry=self.registry,
        )
        self.shadow_requests = Counter(
            SHADOW_REQUESTS,
            "requests mirrored to the candidate, by outcome (compared, failed, dropped)",
            ["model", "stable", "candidate", "outcome"],
            registry=self.registry,
        )
        self.shadow_detections = Counter(
            SHADOW_DETECTIONS,
            "detections of compared requests: matched by class at IoU >= 0.5, or found by one side only",
            ["model", "stable", "candidate", "kind"],
            registry=self.registry,
        )
        self.shadow_score_difference = Histogram(
            SHADOW_SCORE_DIFFERENCE,
            "|score difference| of each matched pair of detections",
            ["model", "stable", "candidate"],
            buckets=SCORE_DIFFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.split = Gauge(
            SPLIT,
            "the traffic split in force: the candidate's canary and shadow shares, in percent",
            ["model", "stable", "candidate", "share"],
            registry=self.registry,
        )
        self.shadow_pending = Gauge(
            SHADOW_PENDING,
            "mirrored requests handed over and not yet recorded",
            ["model"],
            registry=self.registry,
        ).labels(model_name)

        self.non_finite = Counter(
            NON_FINITE,
            "answered images whose detection scores or boxes hold NaN or Inf, by version and role",
            ["model", "version", "role"],
            registry=self.registry,
        )
        # The same count per version, for GetModelStatus (a Counter's value is not public API).
        self._non_finite_by_version: dict[int, int] = {}
        self._non_finite_lock = threading.Lock()

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Counts one request."""
        self.requests.labels(self._model, method, code).inc()
        self.latency.labels(self._model, method).observe(seconds)

    def observe_answer(
        self, version: int, role: str, code: str, seconds: float | None, top_scores: Sequence[float] = ()
    ) -> None:
        """Counts one Predict answered by `version` in `role`: its code, the model's time, each image's top score.

        `seconds` is None when the request failed before the model ran (nothing to time).
        """
        labels = (self._model, str(version), role)
        self.answers.labels(*labels, code).inc()
        if seconds is not None:
            self.answer_latency.labels(*labels).observe(seconds)
        if top_scores:
            histogram = self.top_score.labels(*labels)
            for score in top_scores:
                histogram.observe(score)

    def observe_non_finite(self, version: int, role: str, images: int) -> None:
        """Counts `images` answered by `version` in `role` with NaN or Inf in their scores or boxes."""
        if images <= 0:
            return
        self.non_finite.labels(self._model, str(version), role).inc(images)
        with self._non_finite_lock:
            self._non_finite_by_version[version] = self._non_finite_by_version.get(version, 0) + images

    def non_finite_count(self, version: int) -> int:
        """Images `version` answered with NaN or Inf since this server started."""
        with self._non_finite_lock:
            return self._non_finite_by_version.get(version, 0)

    def observe_shadow(self, stable: int, candidate: int, outcome: str, matching: Matching | None = None) -> None:
        """Counts one mirrored request; `matching` for a compared one."""
        labels = (self._model, str(stable), str(candidate))
        self.shadow_requests.labels(*labels, outcome).inc()
        if matching is None:
            return
        self.shadow_detections.labels(*labels, KIND_MATCHED).inc(matching.matched)
        self.shadow_detections.labels(*labels, KIND_ONLY_STABLE).inc(matching.only_reference)
        self.shadow_detections.labels(*labels, KIND_ONLY_CANDIDATE).inc(matching.only_candidate)
        histogram = self.shadow_score_difference.labels(*labels)
        for difference in matching.score_differences:
            histogram.observe(difference)

    def observe_batch(self, rows: int) -> None:
        """Counts one batch."""
        self.batch_size.labels(self._model).observe(rows)

    def observe_warmup(self, status: str, seconds: float, records: int) -> None:
        """Counts one warm-up replay (a `WarmingLoader`'s on_replay)."""
        self.warmup_latency.labels(self._model, status).observe(seconds)
        self.warmup_records.labels(self._model).inc(records)

    def update_versions(self, manager: Any) -> None:
        """Republishes the version states (called by the VersionManager on every change)."""
        self.versions.clear()
        for v in manager.snapshot():
            self.versions.labels(self._model, str(v.version), v.state.name).set(1)
        self.split.clear()
        split = manager.traffic()
        if split is not None:
            candidate = "" if split.candidate is None else str(split.candidate)
            self.split.labels(self._model, str(split.stable), candidate, ROLE_CANARY).set(split.canary_percent)
            self.split.labels(self._model, str(split.stable), candidate, ROLE_SHADOW).set(split.shadow_percent)
