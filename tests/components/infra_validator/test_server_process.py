"""The model server process helper against stand-ins: a scripted ModelService, and processes that exit or hang.

The real servers (`detx serve` through the InfraValidator, the serving tests
and the benchmarks) use the same helper; these pin down its waiting and
stopping without loading a model.
"""

from __future__ import annotations

import signal
import sys
import time
from concurrent import futures

import grpc
import portpicker
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from detx.components.infra_validator.server_process import (
    AVAILABLE,
    END,
    ModelServerProcess,
    ServerFailed,
    detx_serve_command,
)

LOADING = 20  # ModelVersionStatus.State
# A process that stays up and serves nothing: the scripted ModelService below answers in its place.
IDLE = [sys.executable, "-c", "import time; time.sleep(120)"]


class ScriptedModelService(model_service_pb2_grpc.ModelServiceServicer):
    """Answers GetModelStatus with the next (state, error) of a script, repeating the last one."""

    def __init__(self, script: list[tuple[int, str]]) -> None:
        self.script = script
        self.requests: list[get_model_status_pb2.GetModelStatusRequest] = []

    def GetModelStatus(self, request, context):
        self.requests.append(request)
        state, error = self.script[min(len(self.requests), len(self.script)) - 1]
        response = get_model_status_pb2.GetModelStatusResponse()
        entry = response.model_version_status.add(version=request.model_spec.version.value or 1, state=state)
        entry.status.error_message = error
        return response


@pytest.fixture
def model_service():
    """Starts a scripted ModelService on a free loopback port: call it with the script, get (servicer, port)."""
    servers = []

    def start(script: list[tuple[int, str]]) -> tuple[ScriptedModelService, int]:
        port = portpicker.pick_unused_port()
        servicer = ScriptedModelService(script)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        servers.append(server)
        return servicer, port

    yield start
    for server in servers:
        server.stop(grace=None)


def test_waits_through_loading_until_the_version_is_available(model_service):
    service, port = model_service([(LOADING, ""), (LOADING, ""), (AVAILABLE, "")])
    with ModelServerProcess(IDLE, port, name="stand-in") as process:
        seconds = process.wait_available("candidate", 3, timeout=60)
        assert 0 < seconds < 60 and process.proc.poll() is None
    assert len(service.requests) == 3
    assert {(r.model_spec.name, r.model_spec.version.value) for r in service.requests} == {("candidate", 3)}


def test_without_a_version_any_available_one_ends_the_wait(model_service):
    service, port = model_service([(AVAILABLE, "")])
    with ModelServerProcess(IDLE, port) as process:
        process.wait_available("detx", None, timeout=60)
    assert not service.requests[0].model_spec.HasField("version")


def test_a_version_that_fails_to_load_ends_the_wait_with_the_servers_error(model_service):
    _, port = model_service([(LOADING, ""), (END, "Could not find SavedModel .pb")])
    with ModelServerProcess(IDLE, port, name="stand-in") as process, pytest.raises(ServerFailed) as failed:
        process.wait_available("candidate", 1, timeout=60)
    assert str(failed.value) == "stand-in could not load the model: Could not find SavedModel .pb"


def test_a_process_that_exits_ends_the_wait_with_its_code_and_output(tmp_path):
    command = [sys.executable, "-c", "import sys; print('no such model base path'); sys.exit(3)"]
    process = ModelServerProcess(command, portpicker.pick_unused_port(), name="stand-in")
    with pytest.raises(ServerFailed) as failed:
        process.wait_available("candidate", 1, timeout=60)
    assert str(failed.value) == "stand-in exited with code 3:\nno such model base path"
    assert process.stop() == 3


def test_the_deadline_names_the_setting_and_the_log_tail(tmp_path):
    command = [sys.executable, "-c", "print('loading...', flush=True); import time; time.sleep(120)"]
    log_path = str(tmp_path / "server.log")
    process = ModelServerProcess(command, portpicker.pick_unused_port(), name="stand-in", log_path=log_path)
    started = time.monotonic()
    with pytest.raises(ServerFailed) as failed:
        process.wait_available("candidate", 1, timeout=1.0, setting="infra_validator.max_load_seconds")
    assert time.monotonic() - started < 10
    assert str(failed.value) == (
        "stand-in did not make the model AVAILABLE within 1 s (infra_validator.max_load_seconds):\nloading..."
    )
    process.stop()
    assert process.log() == "loading...\n"  # a log file stays readable after stop


def test_stop_sends_sigterm_and_kills_a_server_that_ignores_it():
    polite = ModelServerProcess(IDLE, portpicker.pick_unused_port())
    assert polite.stop() == -signal.SIGTERM
    stubborn_code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
    stubborn = ModelServerProcess([sys.executable, "-c", stubborn_code + "time.sleep(120)"], 1)
    deadline = time.monotonic() + 60
    while "up" not in stubborn.log():  # SIGTERM is ignored only once the handler is installed
        assert time.monotonic() < deadline, stubborn.log()
        time.sleep(0.05)
    started = time.monotonic()
    assert stubborn.stop(grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_detx_serve_command_runs_this_python_on_the_port_with_extra_options():
    assert detx_serve_command("/models/detx", 8500, "--metrics-port", "0") == [
        sys.executable,
        *("-m", "detx.pipeline.cli", "serve", "--push-destination", "/models/detx"),
        *("--port", "8500", "--metrics-port", "0"),
    ]
