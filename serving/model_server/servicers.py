"""The gRPC services: TF Serving's PredictionService and ModelService, answered from a VersionManager.

Every Predict is routed by the traffic split (routing.py); its answer is
counted by version and role (metrics.py), its images with NaN or Inf scores
or boxes too (shown in GetModelStatus), offered to the request log, and,
for the router's shadow share of stable's answers, handed to the shadow
mirror once gRPC has sent the answer (shadow.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from detx.serving.model_server import predict as predict_lib
from detx.serving.model_server.batching import Batcher
from detx.serving.model_server.metrics import NON_FINITE, ServerMetrics
from detx.serving.model_server.request_log import RequestLog
from detx.serving.model_server.routing import Router
from detx.serving.model_server.shadow import Mirrored, ShadowMirror, top_scores
from detx.serving.model_server.versions import VersionManager


def _unimplemented(method: str) -> Callable[..., Any]:
    def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by detx serve; use Predict")

    handler.__doc__ = f"{method}: UNIMPLEMENTED (detx serves detectors through Predict)."
    return handler


def _call(
    method: str,
    metrics: ServerMetrics,
    context: grpc.ServicerContext,
    run: Callable[[], Any],
) -> Any:
    """Runs one request: deadline check, TF Serving's status codes, metrics."""
    start = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise predict_lib.ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the model ran"
            )
        return run()
    except predict_lib.ServingError as e:
        code = e.code
        context.abort(e.code, e.message)
    except Exception as e:  # an unexpected failure answers INTERNAL; the server stays up
        code = grpc.StatusCode.INTERNAL
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    finally:
        metrics.observe(method, code.name, time.perf_counter() - start)
    return None  # not reached: abort raises


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    Classify = _unimplemented("Classify")
    Regress = _unimplemented("Regress")
    MultiInference = _unimplemented("MultiInference")

    def __init__(
        self,
        router: Router,
        limits: predict_lib.Limits,
        metrics: ServerMetrics,
        batcher: Batcher | None = None,
        request_log: RequestLog | None = None,
        mirror: ShadowMirror | None = None,
    ) -> None:
        self._router, self._limits, self._metrics, self._batcher = router, limits, metrics, batcher
        self._request_log, self._mirror = request_log, mirror

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        """TF Serving's Predict."""
        return _call("Predict", self._metrics, context, lambda: self._predict(request, context))

    def _predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            answer = predict_lib.predict(self._router, request, self._limits, self._batcher)
        except predict_lib.ServingError as e:
            if e.route is not None:  # routed, then failed: it counts against the version that failed
                self._metrics.observe_answer(e.route.version, e.route.role, e.code.name, None)
            raise
        route = answer.route
        ok = grpc.StatusCode.OK.name
        # A NaN top score would poison the histogram's sum; such images are counted as non-finite instead.
        scores = [score for score in top_scores(answer.outputs) if math.isfinite(score)]
        self._metrics.observe_answer(route.version, route.role, ok, answer.seconds, scores)
        self._metrics.observe_non_finite(route.version, route.role, predict_lib.non_finite_images(answer.outputs))
        if self._request_log is not None:
            self._request_log.offer(route.version, answer.signature, answer.inputs, answer.outputs, route.role)
        if self._mirror is not None and route.candidate is not None and self._router.mirror(route):
            mirror = self._mirror
            item = Mirrored(
                route.version, *route.candidate, answer.signature, answer.inputs, answer.outputs, answer.seconds
            )
            # Termination callbacks run once the response and status are sent: the mirror starts after
            # the client has its answer. (False: the call has ended already, so hand over now.)
            if not context.add_callback(lambda: mirror.offer(item)):
                mirror.offer(item)
        return answer.response

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        """TF Serving's GetModelMetadata (signature_def)."""
        return _call(
            "GetModelMetadata", self._metrics, context, lambda: predict_lib.model_metadata(self._router, request)
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED (versions come from the base path)."""

    HandleReloadConfigRequest = _unimplemented("HandleReloadConfigRequest")

    def __init__(self, manager: VersionManager, metrics: ServerMetrics) -> None:
        self._manager, self._metrics = manager, metrics

    def _status(self, request: Any) -> Any:
        spec = request.model_spec
        if spec.name != self._manager.name:
            raise predict_lib.ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}"
            )
        versions = self._manager.snapshot()
        if spec.HasField("version"):
            versions = [v for v in versions if v.version == spec.version.value]
            if not versions:
                raise predict_lib.ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Could not find version {spec.version.value} of model {spec.name}"
                )
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            status = response.model_version_status.add(version=v.version, state=int(v.state))
            if v.error:
                status.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
            status.status.error_message = "; ".join(filter(None, [v.error, self._non_finite(v.version)]))
        return response

    def _non_finite(self, version: int) -> str:
        """The non-finite answers of `version`, as a status message ("" when there are none).

        StatusProto's error_message is "only set if an error was encountered"
        (tensorflow_serving/util/status.proto); NaN answers are one, but the
        version still serves, so its error_code stays OK (0) and its state
        AVAILABLE: clients that judge by the code or the state see no change.
        """
        count = self._metrics.non_finite_count(version)
        if not count:
            return ""
        return (
            f"{count} answered image(s) with NaN or Inf in {' or '.join(predict_lib.FINITE_OUTPUTS)} since the "
            f"server started (metric {NON_FINITE}_total); the version keeps serving: retrain or roll back"
        )

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        """TF Serving's GetModelStatus: every known version with its state and load error."""
        return _call("GetModelStatus", self._metrics, context, lambda: self._status(request))
