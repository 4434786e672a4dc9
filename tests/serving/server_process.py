"""A real `detx serve` process on loopback (used by the serving, web page and notebook tests).

Starting and stopping are the product's (components/infra_validator/server_process.py);
this adds what the tests need: a metrics port, a log file beside the push
destination, TLS, and waiting for any condition.
"""

from __future__ import annotations

import os
import time

import grpc
import portpicker

from detx.components.infra_validator.server_process import ModelServerProcess, detx_serve_command

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Server:
    """A `detx serve` subprocess and a channel to it."""

    def __init__(self, push_destination: str, *args: str, tls_ca: str = "") -> None:
        self.port = portpicker.pick_unused_port()
        self.metrics_port = portpicker.pick_unused_port()
        self.push_destination = push_destination
        self.log_path = push_destination + f".serve-{self.port}.log"
        credentials = None
        if tls_ca:
            with open(tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = ("--metrics-port", str(self.metrics_port), "--poll-seconds", "0.2", *args)
        self.process = ModelServerProcess(
            detx_serve_command(push_destination, self.port, *options),
            self.port,
            name="detx serve",
            log_path=self.log_path,
            env={"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO},
            cwd=REPO,
            credentials=credentials,
        )
        self.channel = self.process.channel
        # Listening is enough here: tests wait for the versions they expect themselves (wait_for).
        try:
            grpc.channel_ready_future(self.channel).result(timeout=120)
        except grpc.FutureTimeoutError:
            self.stop()
            raise AssertionError(f"detx serve did not start; log:\n{self.log()}") from None

    def log(self) -> str:
        return self.process.log()

    def wait_for(self, predicate, timeout=240.0, what="condition"):  # generous: loads slow down on busy CI
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; server log:\n{self.log()}")

    def stop(self) -> int:
        return self.process.stop(grace=60)
