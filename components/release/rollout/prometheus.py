"""Rollout signals from Prometheus in a cluster: TF Serving's own metrics, per track of the rollout overlay.

TF Serving cannot tell versions apart in its metrics (their labels name the
model, not the version), so the rollout overlays run each version in its own
track of pods, labelled `track: stable|canary`, and Prometheus must copy that
pod label onto the series it scrapes (the usual `labelmap` of
`__meta_kubernetes_pod_label_(.+)`; docs/rollout-kubernetes.md).

TF Serving's metrics, as its source defines and exports them:

- `/tensorflow/serving/request_count` {model_name, status}, a counter, +1 per
  gRPC Predict, Classify or Regress with the TF status code's name ("OK",
  "INVALID_ARGUMENT", ...: the gRPC code names)
  (tensorflow_serving/servables/tensorflow/util.cc `RecordModelRequestCount`,
  called by model_servers/prediction_service_impl.cc);
- `/tensorflow/serving/request_latency` {model_name, API, entrypoint}, a
  histogram of wall time in microseconds (buckets 10 * 1.8^i, 33 of them),
  recorded only for requests that succeeded (prediction_service_impl.cc:
  `RecordRequestLatency(..., "Predict", "GRPC", ...)` when status.ok()).

The Prometheus exporter turns every character outside [a-zA-Z0-9_] of a name
into ':' (util/prometheus_exporter.cc `GetPrometheusMetricName`), so they are
scraped as `:tensorflow:serving:request_count` and
`:tensorflow:serving:request_latency_bucket|_sum|_count`.

Counts are the instant sums over the track's pods (cumulative, like the
counters). A pod that restarts or goes away takes its counts with it; the sum
then falls and the controller counts the stage afresh (as after a restart of
`detx serve`). Top scores and mirror comparisons are not measured by TF
Serving: those counts are None, and the controller says "not measured".

Which requests a track's counts are: the stable track answers clients; the
canary track answers mirrored requests during a shadow stage (role shadow) and
clients during a canary stage (role canary). TF Serving cannot tell a mirrored
request from a client's, so a split that both mirrors to the canary and routes
clients to it cannot be judged here.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from typing import Any

from detx.components.release.rollout.signals import EMPTY_HISTOGRAM, Counts, Histogram, SignalError, VersionCounts
from detx.components.release.traffic import TrafficSplit

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
_MICROSECONDS = 1e-6
_TIMEOUT_SECONDS = 10.0
_IDLE = VersionCounts(answers={}, latency=EMPTY_HISTOGRAM, top_score=None)


class PrometheusSource:
    """Counts per track from Prometheus' HTTP API (`/api/v1/query`).

    Args:
        url: Prometheus' base URL, e.g. http://prometheus.monitoring:9090 (or a `kubectl port-forward`).
        model: the model's name in TF Serving's model config (its `model_name` label).
        namespace: the rollout's namespace (None: any), matched on `namespace_label`.
        namespace_label: the label Prometheus puts the pod's namespace in (`namespace` in most setups;
            `kubernetes_namespace` in Prometheus' own example configuration).
        track_label: the label Prometheus copies the pods' `track` label into.
        timeout: seconds to wait for each answer.
    """

    def __init__(
        self,
        url: str,
        model: str = "detx",
        namespace: str | None = "detx-serving",
        namespace_label: str = "namespace",
        track_label: str = "track",
        timeout: float = _TIMEOUT_SECONDS,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.namespace = namespace
        self.namespace_label = namespace_label
        self.track_label = track_label
        self.timeout = timeout

    def describe(self) -> str:
        """The server and the series it reads."""
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"Prometheus at {self.url} (TF Serving's metrics of model {self.model}{where}, by {self.track_label})"

    def _selector(self, *extra: str) -> str:
        matchers = [f'model_name="{self.model}"', *extra]
        if self.namespace:
            matchers.append(f'{self.namespace_label}="{self.namespace}"')
        matchers.append(f'{self.track_label}=~"stable|canary"')
        return "{" + ",".join(matchers) + "}"

    def queries(self) -> dict[str, str]:
        """The PromQL it sends: answers by track and status, latency buckets by track and le, latency sum by track."""
        track = self.track_label
        grpc_predict = self._selector('API="Predict"', 'entrypoint="GRPC"')
        return {
            "answers": f"sum by ({track}, status) ({REQUEST_COUNT}{self._selector()})",
            "latency_buckets": f"sum by ({track}, le) ({REQUEST_LATENCY}_bucket{grpc_predict})",
            "latency_sum": f"sum by ({track}) ({REQUEST_LATENCY}_sum{grpc_predict})",
        }

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{"metric": {label: value}, "value": [time, "number"]}, ...].

        The answer's format is Prometheus' HTTP API's (docs/querying/api.md):
        {"status": "success", "data": {"resultType": "vector", "result": [...]}},
        or {"status": "error", "errorType": ..., "error": ...} with a 4xx/5xx.

        Raises:
            SignalError: Prometheus cannot be reached, refuses the query, or answers something else.
        """
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body = response.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
            detail = body
            try:
                answer = json.loads(body)
                detail = f"{answer.get('errorType')}: {answer.get('error')}"
            except (json.JSONDecodeError, AttributeError):
                pass
            raise SignalError(
                f"Prometheus at {self.url} refused the query {promql!r} (HTTP {e.code}, {detail})"
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise SignalError(
                f"cannot reach Prometheus at {self.url} ({reason}); give its base URL, e.g. after "
                "`kubectl port-forward -n monitoring svc/prometheus 9090`, http://127.0.0.1:9090"
            ) from None
        try:
            answer = json.loads(body)
            if answer["status"] == "success" and answer["data"]["resultType"] == "vector":
                result: list[dict[str, Any]] = answer["data"]["result"]
                return result
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
        raise SignalError(
            f"{self.url} did not answer the query {promql!r} as Prometheus' /api/v1/query does: {body[:200]!r}"
        )

    def counts(self, split: TrafficSplit) -> Counts:
        """The cumulative counts of the stable track and of the canary track in the candidate's role.

        Raises:
            SignalError: Prometheus cannot be read, has no series of this model's stable track, or the split
                both mirrors to and routes to the candidate (TF Serving cannot tell those requests apart).
            ValueError: the split has no candidate.
        """
        if split.candidate is None:
            raise ValueError("a split without a candidate has nothing to judge")
        if split.shadow_percent and split.canary_percent:
            raise SignalError(
                "TF Serving's metrics cannot tell mirrored requests from clients' on the canary track: "
                "judge a split that mirrors (shadow) or one that routes clients (canary), not both at once"
            )
        queries = self.queries()
        answers: dict[str, dict[str, float]] = defaultdict(dict)
        for sample in self.query(queries["answers"]):
            labels = sample["metric"]
            answers[labels.get(self.track_label, "")][labels.get("status", "")] = _value(sample)
        buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for sample in self.query(queries["latency_buckets"]):
            le = float(sample["metric"]["le"])  # "+Inf" parses as inf
            le = le if math.isinf(le) else le * _MICROSECONDS
            buckets[sample["metric"].get(self.track_label, "")].append((le, _value(sample)))
        sums = {s["metric"].get(self.track_label, ""): _value(s) for s in self.query(queries["latency_sum"])}
        if "stable" not in answers:
            self._explain_missing_stable()

        def track(name: str) -> VersionCounts:
            pairs = tuple(sorted(buckets.get(name, [])))
            latency = Histogram(pairs, sums.get(name, 0.0) * _MICROSECONDS, pairs[-1][1]) if pairs else EMPTY_HISTOGRAM
            return VersionCounts(answers=dict(answers.get(name, {})), latency=latency, top_score=None)

        canary = track("canary")
        return Counts(
            stable=track("stable"),
            canary=canary if split.canary_percent else _IDLE,
            shadow=canary if split.shadow_percent else _IDLE,
            comparisons=None,
        )

    def _explain_missing_stable(self) -> None:
        """Raises why the stable track has no series: the model is not scraped, the labels differ, or no traffic yet."""
        by_track = self.query(f'count by ({self.track_label}) ({REQUEST_COUNT}{{model_name="{self.model}"}})')
        tracks = {s["metric"].get(self.track_label) for s in by_track}
        if not by_track:
            raise SignalError(
                f"Prometheus at {self.url} has no {REQUEST_COUNT} of model {self.model}: is TF Serving scraped "
                "(its monitoring.config and the pods' prometheus.io annotations) and has it answered a request?"
            )
        if tracks == {None}:
            raise SignalError(
                f"Prometheus at {self.url} has {REQUEST_COUNT} of model {self.model} without a {self.track_label} "
                f"label: copy the pods' `track` label onto the series (relabel __meta_kubernetes_pod_label_track "
                f"to {self.track_label}, or labelmap __meta_kubernetes_pod_label_(.+)), or name the label it has"
            )
        if "stable" in tracks and self.namespace:
            raise SignalError(
                f"Prometheus at {self.url} has the stable track of model {self.model} but not with "
                f'{self.namespace_label}="{self.namespace}": name the namespace, or the label your Prometheus '
                "puts it in (e.g. kubernetes_namespace)"
            )
        raise SignalError(
            f"the stable track of model {self.model} has answered nothing yet (TF Serving's counters appear "
            "with the first request, and begin again when its pods restart): send traffic, then read again"
        )


def _value(sample: dict[str, Any]) -> float:
    """A vector sample's number (Prometheus writes it as a string: "12", "+Inf", "NaN")."""
    return float(sample["value"][1])
