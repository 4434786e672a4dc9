"""A model server process for one candidate: TF Serving's binary when installed, else `detx serve`.

TFX's InfraValidator starts TF Serving in Docker or Kubernetes; detx starts
the binary directly, because the pipeline image installs it (Dockerfile: the
`tensorflow-model-server` package), so on Kubeflow the check runs where the
step runs. Where it is missing (a laptop, this project's CI), `detx serve`
takes its place: the same gRPC API, version rules and warm-up replay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import grpc
import portpicker
import psutil
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

TF_SERVING = "tensorflow_model_server"
DETX_SERVE = "detx serve"
# GetModelStatus's ModelVersionStatus.State values (tensorflow_serving/apis/get_model_status.proto).
_AVAILABLE = 30
_END = 50


class ServerFailed(RuntimeError):
    """The server did not make the version available; the message says what it reported."""


def choose(server: str) -> str:
    """The server to run for the option value ("auto": TF Serving's binary if it is on PATH).

    Raises:
        ServerFailed: `tensorflow_model_server` was asked for and is not on PATH.
    """
    if server == "auto":
        return TF_SERVING if shutil.which(TF_SERVING) else DETX_SERVE
    if server == TF_SERVING and not shutil.which(TF_SERVING):
        raise ServerFailed(
            f"{TF_SERVING} is not on PATH; install TF Serving's tensorflow-model-server package "
            "(the pipeline image has it) or set infra_validator.server to auto"
        )
    return server


def _command(server: str, base_path: str, model_name: str, port: int) -> list[str]:
    if server == TF_SERVING:
        # The flags of tensorflow_serving/model_servers/main.cc; warm-up replay is on by default.
        return [
            TF_SERVING,
            f"--port={port}",
            "--rest_api_port=0",
            f"--model_name={model_name}",
            f"--model_base_path={base_path}",
            "--file_system_poll_wait_seconds=1",
        ]
    return [
        sys.executable,
        "-m",
        "detx.pipeline.cli",
        "serve",
        "--push-destination",
        base_path,
        "--name",
        model_name,
        "--port",
        str(port),
        "--metrics-port",
        "0",
        "--poll-seconds",
        "0.2",
    ]


class ServerProcess:
    """A model server serving `base_path` on a free loopback port, with its peak memory sampled.

    Use as a context manager; the process is stopped on exit.

    Args:
        server: TF_SERVING or DETX_SERVE.
        base_path: a model base path with one numeric version directory.
        model_name: the name requests address.
    """

    def __init__(self, server: str, base_path: str, model_name: str) -> None:
        self.server = server
        self.model_name = model_name
        self.port = portpicker.pick_unused_port()
        self.peak_rss = 0
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop)
        self._started = time.monotonic()
        self.proc = subprocess.Popen(
            _command(server, base_path, model_name, self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        # Loopback never goes through a proxy, even when the step's environment names one for its bucket.
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=[("grpc.enable_http_proxy", 0)])
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="infra-memory", daemon=True)
        self._sampler.start()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _sample(self) -> None:
        try:
            process = psutil.Process(self.proc.pid)
            while not self._stop.is_set():
                rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
                self.peak_rss = max(self.peak_rss, rss)
                self._stop.wait(0.05)
        except psutil.Error:
            return  # the process is gone

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's output, for messages."""
        self._log.flush()
        self._log.seek(0)
        return "".join(self._log.readlines()[-lines:]).strip()

    def wait_available(self, version: int, timeout: float) -> float:
        """Waits until `version` is AVAILABLE; returns the seconds since the process started.

        Raises:
            ServerFailed: the process exited, the version ended with an error, or `timeout` passed.
        """
        stub = model_service_pb2_grpc.ModelServiceStub(self.channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        request.model_spec.version.value = version
        deadline = self._started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.server} exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status = stub.GetModelStatus(request, timeout=5).model_version_status
            except grpc.RpcError as e:
                # UNAVAILABLE: not listening yet; NOT_FOUND: the version is not known yet.
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    raise ServerFailed(f"{self.server} GetModelStatus: {e.code().name}: {e.details()}") from None
            else:
                for entry in status:
                    if entry.state == _AVAILABLE:
                        return time.monotonic() - self._started
                    if entry.state == _END and entry.status.error_message:
                        raise ServerFailed(f"{self.server} could not load the model: {entry.status.error_message}")
            time.sleep(0.1)
        raise ServerFailed(
            f"{self.server} did not make the model AVAILABLE within {timeout:.0f} s "
            f"(infra_validator.max_load_seconds):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL) and the memory sampler."""
        self._stop.set()
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._sampler.join(timeout=5)
        self._log.close()

    def describe(self) -> dict[str, Any]:
        """What ran, for the report."""
        return {"server": self.server, "peak_memory_mb": self.peak_rss / 2**20}
