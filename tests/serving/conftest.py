"""A real `detx serve` process on loopback, serving tiny detectors exported by detx."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import grpc
import portpicker
import pytest


def export_tiny(export_dir: str, seed: int = 0) -> str:
    """Exports the tiny preset with random weights (serving does not care how well it detects)."""
    import keras

    from components.data.synth import label_map
    from components.modeling.config import preset
    from components.modeling.network import build_network
    from components.trainer import export

    keras.utils.set_random_seed(seed)
    model_config, _ = preset("tiny")
    lm_dir = export_dir + ".labels"
    os.makedirs(lm_dir, exist_ok=True)
    lm_path = os.path.join(lm_dir, "label_map.pbtxt")
    label_map().write(lm_path)
    return export.export(build_network(model_config, 3), model_config, lm_path, export_dir)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return export_tiny(str(tmp_path_factory.mktemp("tiny") / "model"))


class Server:
    """A `detx serve` subprocess and a channel to it."""

    def __init__(self, base_path: str, *args: str, tls_ca: str = "") -> None:
        self.port = portpicker.pick_unused_port()
        self.metrics_port = portpicker.pick_unused_port()
        self.base_path = base_path
        self.log_path = base_path + f".serve-{self.port}.log"
        self._log = open(self.log_path, "w")
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "serve",
                "--model-base-path",
                base_path,
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
