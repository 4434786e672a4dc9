"""The shadow mirror: a candidate version runs on a share of live requests, off the request path, and is compared.

A request that stable answered and that the router picked for mirroring
(routing.py) is handed over once gRPC has sent stable's answer (the
servicer registers the hand-over as the call's termination callback). The
hand-over is a non-blocking put into a bounded queue: when the mirror falls
behind, the request is counted as dropped instead of waiting, so mirroring
never slows a client. One worker thread runs the candidate on the inputs
stable took (already parsed and checked: nothing is decoded twice), matches
each image's detections with stable's (components/evaluation/detections.py
`match`: by class at IoU >= 0.5, detections scoring at least the mirror's
min score) and records the metrics (metrics.py) and one request-log line.
Clients never see the candidate's answer: nothing of it leaves this module
except counts.

Mirroring costs the compute it mirrors: one candidate run per mirrored
request, one at a time (a single worker bounds the extra load to one
request's worth), plus a matching of at most a hundred boxes per image.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Any

import grpc
import numpy as np

from detx.components.evaluation import score_profile
from detx.components.evaluation.detections import MIN_SCORE, Detections, Matching, match
from detx.components.release.traffic_metrics import OUTCOME_COMPARED, OUTCOME_DROPPED, OUTCOME_FAILED, ROLE_SHADOW
from detx.serving.model_server.metrics import ServerMetrics
from detx.serving.model_server.predict import ServingError, run_arrays
from detx.serving.model_server.request_log import RequestLog, ShadowComparison, now_utc

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MirrorOptions:
    """How the mirror compares and how far it may fall behind.

    Attributes:
        min_score: detections scoring at least this take part in a comparison (`detx serve --min-score`,
            whose default is the CLI's one home for it, pipeline/cli/options.py `min_score_option`).
        queue_size: mirrored requests waiting at most; more are dropped (counted).
    """

    min_score: float = MIN_SCORE
    queue_size: int = 32

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"the mirror's min score must be between 0 and 1, got {self.min_score}")
        if self.queue_size < 1:
            raise ValueError(f"the mirror's queue size must be 1 or more, got {self.queue_size}")


@dataclasses.dataclass(frozen=True)
class Mirrored:
    """One request stable answered, to run on the candidate.

    Attributes:
        stable, candidate: the versions.
        model: the candidate's loaded SavedModel.
        signature: the signature stable ran.
        inputs: the inputs stable took.
        outputs: stable's outputs.
        stable_seconds: stable's time for the request.
    """

    stable: int
    candidate: int
    model: Any
    signature: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    stable_seconds: float


def top_scores(outputs: dict[str, np.ndarray]) -> list[float]:
    """Each image's top detection score (score_profile's measure; [] when the outputs have no scores)."""
    if "detection_scores" not in outputs:
        return []
    scores = np.asarray(outputs["detection_scores"])
    counts = np.asarray(outputs.get("num_detections", np.full(len(scores), scores.shape[-1]))).reshape(-1)
    return [score_profile.image_profile(scores[i], int(counts[i]))[0] for i in range(len(scores))]


def compare(stable: dict[str, np.ndarray], candidate: dict[str, np.ndarray], min_score: float) -> Matching:
    """Both versions' detections of every image of one request, matched (summed over the images)."""
    total = Matching()
    for i in range(len(np.asarray(stable["num_detections"]))):
        total += match(Detections.from_outputs(stable, i), Detections.from_outputs(candidate, i), min_score)
    return total


class ShadowMirror:
    """A bounded queue of mirrored requests and the worker that runs, compares and records them."""

    def __init__(
        self,
        model_name: str,
        metrics: ServerMetrics,
        options: MirrorOptions | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.options = options or MirrorOptions()
        self._model = model_name
        self._metrics = metrics
        self._request_log = request_log
        self._queue: queue.Queue[Mirrored | None] = queue.Queue(maxsize=self.options.queue_size)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._work, name="shadow-mirror", daemon=True)
        self._thread.start()

    def offer(self, item: Mirrored) -> None:
        """Hands one request over; never blocks (a full queue drops it, counted)."""
        with self._idle:
            self._pending += 1
            self._metrics.shadow_pending.set(self._pending)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._metrics.observe_shadow(item.stable, item.candidate, OUTCOME_DROPPED)
            self._done()

    def wait_idle(self, timeout: float) -> bool:
        """Waits until every request handed over is recorded (benchmarks and shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stops the worker after the requests already queued."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._metrics.shadow_pending.set(self._pending)
            self._idle.notify_all()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._mirror(item)
            except Exception:  # a comparison that breaks must never stop the mirror
                LOG.exception("shadow comparison of version %d with %d failed", item.candidate, item.stable)
            finally:
                self._done()

    def _mirror(self, item: Mirrored) -> None:
        start = time.perf_counter()
        try:
            outputs = run_arrays(item.model, item.signature, item.inputs)
        except Exception as e:  # the candidate failing is a finding, counted; the client already has its answer
            code = e.code.name if isinstance(e, ServingError) else grpc.StatusCode.INTERNAL.name
            LOG.warning("shadow: version %d failed a request version %d answered: %s", item.candidate, item.stable, e)
            self._metrics.observe_answer(item.candidate, ROLE_SHADOW, code, None)
            self._metrics.observe_shadow(item.stable, item.candidate, OUTCOME_FAILED)
            return
        seconds = time.perf_counter() - start
        self._metrics.observe_answer(item.candidate, ROLE_SHADOW, grpc.StatusCode.OK.name, seconds, top_scores(outputs))
        matching = compare(item.outputs, outputs, self.options.min_score)
        self._metrics.observe_shadow(item.stable, item.candidate, OUTCOME_COMPARED, matching)
        if self._request_log is not None:
            self._request_log.offer_shadow(
                ShadowComparison(
                    time=now_utc(),
                    model=self._model,
                    stable=item.stable,
                    candidate=item.candidate,
                    signature=item.signature,
                    images=len(np.asarray(item.outputs["num_detections"])),
                    matched=matching.matched,
                    only_stable=matching.only_reference,
                    only_candidate=matching.only_candidate,
                    stable_seconds=round(item.stable_seconds, 6),
                    candidate_seconds=round(seconds, 6),
                )
            )
