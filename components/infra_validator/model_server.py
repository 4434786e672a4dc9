"""A model server process for one candidate: TF Serving's binary when installed, else `detx serve`.

TFX's InfraValidator starts TF Serving in Docker or Kubernetes; detx starts
the binary directly, because the pipeline image installs it (Dockerfile: the
`tensorflow-model-server` package), so on Kubeflow the check runs where the
step runs. Where it is missing (a laptop, this project's CI), `detx serve`
takes its place: the same gRPC API, version rules and warm-up replay.
Starting, waiting and stopping are server_process.py's, shared with the tests
and the benchmarks; this module picks the server and samples its memory.
"""

from __future__ import annotations

import shutil
import threading

import portpicker
import psutil

from detx.components.infra_validator.server_process import ModelServerProcess, ServerFailed, detx_serve_command

TF_SERVING = "tensorflow_model_server"
DETX_SERVE = "detx serve"


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
    return detx_serve_command(base_path, port, "--name", model_name, "--metrics-port", "0", "--poll-seconds", "0.2")


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
        self.process = ModelServerProcess(
            _command(server, base_path, model_name, self.port),
            self.port,
            name=server,
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        self.channel = self.process.channel
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="infra-memory", daemon=True)
        self._sampler.start()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _sample(self) -> None:
        try:
            process = psutil.Process(self.process.proc.pid)
            while not self._stop.is_set():
                rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
                self.peak_rss = max(self.peak_rss, rss)
                self._stop.wait(0.05)
        except psutil.Error:
            return  # the process is gone

    def wait_available(self, version: int, timeout: float) -> float:
        """Waits until `version` is AVAILABLE; returns the seconds since the process started.

        Raises:
            ServerFailed: the process exited, the version ended with an error, or `timeout` passed.
        """
        return self.process.wait_available(
            self.model_name, version, timeout, setting="infra_validator.max_load_seconds"
        )

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL) and the memory sampler."""
        self._stop.set()
        self.process.stop()
        self._sampler.join(timeout=5)
