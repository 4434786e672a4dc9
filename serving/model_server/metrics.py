"""Prometheus metrics of the model server: requests, errors, latency, loaded versions, warm-ups."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Counts one request."""
        self.requests.labels(self._model, method, code).inc()
        self.latency.labels(self._model, method).observe(seconds)

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
