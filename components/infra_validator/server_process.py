"""A model server process on loopback: start it, wait until a version is AVAILABLE, stop it.

The one helper for every place that runs a model server as a process: the
InfraValidator (model_server.py), the tests of `detx serve`
(tests/serving/server_process.py) and the serving benchmarks (bench/common.py).

Availability is the server's own answer, TF Serving's
`ModelService.GetModelStatus` (`detx serve` implements it too): a version is
AVAILABLE once it is loaded and its warm-up replayed. Waiting has a deadline,
and a process that exits or a version that fails to load ends the wait at
once, with the server's last output in the message. Stopping is SIGTERM (both
servers drain and exit), then SIGKILL if the process outlives the grace period.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

# GetModelStatus's ModelVersionStatus.State values (tensorflow_serving/apis/get_model_status.proto).
AVAILABLE = 30
END = 50
# Seconds a stopped server gets to exit after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 30.0


class ServerFailed(RuntimeError):
    """The server did not make the version available; the message says what it reported."""


def detx_serve_command(push_destination: str, port: int, *args: str) -> list[str]:
    """The command line of `detx serve` on `port` for a push destination, in this Python, plus `args`."""
    command = [sys.executable, "-m", "detx.pipeline.cli", "serve", "--push-destination", push_destination]
    return [*command, "--port", str(port), *args]


class ModelServerProcess:
    """A model server subprocess, its output in a log file, and a gRPC channel to it.

    Use as a context manager, or call `stop`.

    Args:
        command: the server's command line; it must serve gRPC on `port` of the loopback interface.
        port: the server's gRPC port.
        name: what messages call the server (e.g. "detx serve").
        log_path: where its stdout and stderr go (kept after `stop`); a temporary file when empty.
        env: variables set for the server on top of this process's environment.
        cwd: the server's working directory (this process's when None).
        credentials: TLS credentials for the channel (then it addresses `localhost`, the name a local
            certificate holds); an insecure channel to 127.0.0.1 when None.
    """

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        *,
        name: str = "model server",
        log_path: str = "",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb") if log_path else tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            list(command), stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})}
        )
        # Loopback never goes through a proxy, even when the environment names one (e.g. for a bucket).
        options = [("grpc.enable_http_proxy", 0)]
        if credentials is None:
            self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
        else:
            self.channel = grpc.secure_channel(f"localhost:{port}", credentials, options=options)

    def __enter__(self) -> ModelServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        """Everything the server has written so far."""
        if self.log_path:  # readable after stop too
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        # pread leaves the file offset alone: the server shares it and keeps writing at the end.
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's output, for messages."""
        return "".join(self.log().splitlines(keepends=True)[-lines:]).strip()

    def wait_available(self, model_name: str, version: int | None, timeout: float, setting: str = "") -> float:
        """Waits until `version` (any version when None) is AVAILABLE; returns the seconds since the process started.

        Args:
            model_name: the model the server serves.
            version: the version to wait for, or None for the first to become AVAILABLE.
            timeout: seconds from the start of the process.
            setting: the option that sets `timeout`, named in the message when it passes.

        Raises:
            ServerFailed: the process exited, the version ended with an error, or `timeout` passed.
        """
        stub = model_service_pb2_grpc.ModelServiceStub(self.channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = version
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status = stub.GetModelStatus(request, timeout=5).model_version_status
            except grpc.RpcError as e:
                # UNAVAILABLE: not listening yet; NOT_FOUND: the version is not known yet.
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    raise ServerFailed(f"{self.name} GetModelStatus: {e.code().name}: {e.details()}") from None
            else:
                for entry in status:
                    if entry.state == AVAILABLE:
                        return time.monotonic() - self.started
                    if entry.state == END and entry.status.error_message:
                        raise ServerFailed(f"{self.name} could not load the model: {entry.status.error_message}")
            time.sleep(0.1)
        named = f" ({setting})" if setting else ""
        raise ServerFailed(
            f"{self.name} did not make the model AVAILABLE within {timeout:.0f} s{named}:\n{self.log_tail()}"
        )

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int:
        """Stops the server: SIGTERM, then SIGKILL after `grace` seconds; returns its exit code."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
