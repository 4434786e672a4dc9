"""A real `detx serve` process on loopback (used by the serving, web page and notebook tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import grpc
import portpicker


class Server:
    """A `detx serve` subprocess and a channel to it."""

    def __init__(self, push_destination: str, *args: str, tls_ca: str = "") -> None:
        self.port = portpicker.pick_unused_port()
        self.metrics_port = portpicker.pick_unused_port()
        self.push_destination = push_destination
        self.log_path = push_destination + f".serve-{self.port}.log"
        self._log = open(self.log_path, "w")
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "detx.pipeline.cli",
                "serve",
                "--push-destination",
                push_destination,
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                "--poll-seconds",
                "0.2",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=repo,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": repo},
        )
        if tls_ca:
            with open(tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            self.channel = grpc.secure_channel(f"localhost:{self.port}", credentials)
        else:
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        try:
            grpc.channel_ready_future(self.channel).result(timeout=120)
        except grpc.FutureTimeoutError:
            self.stop()
            raise AssertionError(f"detx serve did not start; log:\n{self.log()}") from None

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def wait_for(self, predicate, timeout=240.0, what="condition"):  # generous: loads slow down on busy CI
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; server log:\n{self.log()}")

    def stop(self) -> int:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
        return self.proc.returncode
