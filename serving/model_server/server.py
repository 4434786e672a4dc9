"""`detx serve`: a model server on TF Serving's gRPC API, for development, demos and tests.

No `tensorflow_model_server` binary can be installed here; production runs the
official `tensorflow/serving` image (serving/k8s). This server uses the same
protos (`tensorflow-serving-api`), the same version directory rules and the
same status codes, so clients work unchanged against either.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from prometheus_client import start_http_server
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from detx.serving import defaults
from detx.serving.model_server.batching import Batcher
from detx.serving.model_server.metrics import ServerMetrics
from detx.serving.model_server.predict import Limits
from detx.serving.model_server.request_log import RequestLog, RequestLogConfig
from detx.serving.model_server.routing import FileTraffic, FixedTraffic, Router, TrafficSource
from detx.serving.model_server.servicers import ModelServicer, PredictionServicer
from detx.serving.model_server.shadow import MirrorOptions, ShadowMirror
from detx.serving.model_server.versions import VersionManager, VersionPolicy, load_saved_model
from detx.serving.model_server.warmup_replay import WarmingLoader

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """How `detx serve` runs.

    Attributes:
        model_name: the name clients put in ModelSpec.
        push_destination: the model base path (the push destination).
        host: the address to bind (localhost by default: no authentication here).
        port: gRPC port (TF Serving's convention: 8500).
        metrics_port: Prometheus metrics over HTTP (0: off).
        policy: versions and labels to serve.
        max_request_bytes: larger requests are refused with RESOURCE_EXHAUSTED.
        limits: per-request limits (pixels).
        workers: request threads.
        poll_seconds: how often the base path is read.
        tls_cert, tls_key: PEM files to serve over TLS ("" = plaintext).
        tls_client_ca: PEM of the CA that signs client certificates (mutual TLS).
        grace_seconds: on SIGTERM, how long running requests may finish.
        batching: batch concurrent requests (`Batcher`).
        max_batch_size: rows per batch at most.
        batch_timeout_ms: how long a request may wait for others.
        request_log: log a sample of requests' image statistics and score profiles (None: off).
        warmup_iterations: times each record of a version's warm-up file runs before the version
            serves (TF Serving's ModelWarmupOptions.num_request_iterations).
        traffic: a fixed traffic split (`--canary`, `--shadow`). None: follow the push destination's
            detx_traffic.json, unless `policy` pins versions (then the policy alone decides).
        mirror: how the shadow mirror compares and how far it may fall behind.
    """

    model_name: str
    push_destination: str
    host: str = defaults.LOOPBACK
    port: int = defaults.GRPC_PORT
    metrics_port: int = 0
    policy: VersionPolicy = dataclasses.field(default_factory=VersionPolicy)
    max_request_bytes: int = defaults.MAX_REQUEST_MB * 1024 * 1024
    limits: Limits = dataclasses.field(default_factory=Limits)
    workers: int = defaults.WORKERS
    poll_seconds: float = defaults.POLL_SECONDS
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    grace_seconds: float = 10.0
    batching: bool = False
    max_batch_size: int = defaults.MAX_BATCH_SIZE
    batch_timeout_ms: float = defaults.BATCH_TIMEOUT_MS
    request_log: RequestLogConfig | None = None
    warmup_iterations: int = 1
    traffic: FixedTraffic | None = None
    mirror: MirrorOptions = dataclasses.field(default_factory=MirrorOptions)

    def traffic_source(self) -> TrafficSource | None:
        """Where the split comes from: the fixed one, the file, or nowhere (versions pinned by the policy)."""
        if self.traffic is not None:
            return self.traffic
        return None if self.policy.specific else FileTraffic(self.push_destination)


class ModelServer:
    """The gRPC server, its version manager and its metrics endpoint."""

    def __init__(self, config: ServerConfig, loader: Callable[[str], Any] = load_saved_model) -> None:
        """Builds the server; `loader` loads one version directory, and its warm-up file is replayed after.

        Raises:
            ValueError: a setting is out of range (TLS without a key, warm-up iterations below 1).
        """
        self.config = config
        self.metrics = ServerMetrics(config.model_name)
        self.manager = VersionManager(
            config.model_name,
            config.push_destination,
            config.policy,
            loader=WarmingLoader(loader, config.limits, config.warmup_iterations, self.metrics.observe_warmup),
            on_change=self.metrics.update_versions,
            traffic=config.traffic_source(),
        )
        self.router = Router(self.manager)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="predict"),
            options=[
                ("grpc.max_receive_message_length", config.max_request_bytes),
                ("grpc.max_send_message_length", 512 * 1024 * 1024),
            ],
        )
        self.batcher = (
            Batcher(config.max_batch_size, config.batch_timeout_ms / 1000, on_batch=self.metrics.observe_batch)
            if config.batching
            else None
        )
        self.request_log = RequestLog(config.request_log, config.model_name) if config.request_log else None
        self.mirror = ShadowMirror(config.model_name, self.metrics, config.mirror, self.request_log)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.router, config.limits, self.metrics, self.batcher, self.request_log, self.mirror),
            self._server,
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.manager, self.metrics), self._server
        )
        address = f"{config.host}:{config.port}"
        if config.tls_cert:
            self.port = self._server.add_secure_port(address, _credentials(config))
        else:
            self.port = self._server.add_insecure_port(address)
        self._stopped = threading.Event()

    def start(self) -> None:
        """Loads what is there, then serves; returns at once."""
        self.manager.start(self.config.poll_seconds)
        if self.config.metrics_port:
            start_http_server(self.config.metrics_port, addr=self.config.host, registry=self.metrics.registry)
        self._server.start()
        LOG.info(
            "serving %s from %s on %s:%d",
            self.config.model_name,
            self.config.push_destination,
            self.config.host,
            self.port,
        )

    def stop(self, grace: float | None = None) -> None:
        """Stops taking requests, lets running ones finish for `grace` seconds, stops watching."""
        self._server.stop(self.config.grace_seconds if grace is None else grace).wait()
        if self.batcher is not None:
            self.batcher.stop()
        self.mirror.close()  # before the request log, which takes its last comparisons
        if self.request_log is not None:
            self.request_log.close()
        self.manager.stop()
        self._stopped.set()

    def wait(self) -> None:
        """Blocks until stopped; SIGTERM and SIGINT stop the server gracefully."""

        def handle(signum: int, _frame: Any) -> None:
            LOG.info("signal %d: stopping after running requests finish", signum)
            threading.Thread(target=self.stop, daemon=True).start()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        # Python runs signal handlers in the main thread, and only when it runs bytecode: the
        # kernel may deliver SIGTERM to one of gRPC's threads, which does not wake a main thread
        # blocked in an untimed wait. Waking every half second bounds how late the handler runs.
        while not self._stopped.wait(0.5):
            pass


def _credentials(config: ServerConfig) -> grpc.ServerCredentials:
    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    if not config.tls_key:
        raise ValueError("--tls-cert needs --tls-key")
    root = read(config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(read(config.tls_key), read(config.tls_cert))], root_certificates=root, require_client_auth=root is not None
    )
