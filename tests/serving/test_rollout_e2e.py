"""`detx rollout` against a real `detx serve` under client load: a good candidate promoted, a worse one rolled back.

Versions are detectors of known quality (tests/serving/conftest.py
`push_oracle`): two perfect ones agree 100%, a noisy one (jittered boxes,
missed and false detections) does not. Clients send requests naming no
version all along; not one may fail, and none may get a shadow's answer.

One server takes both rollouts, one after the other, as in production (a
model server's start is most of this test's time). The command that is
killed runs as its own process; the others run in this one (the same click
command; TensorFlow is imported here already, so no start-up to pay).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from click.testing import CliRunner, Result

from detx.components.evaluation.detections import Detections, Matching, match
from detx.components.model_store import ModelStore
from detx.components.release import traffic_metrics as M
from detx.components.release.rollout.state import read_state
from detx.components.release.traffic import TrafficSplit, read_traffic, write_traffic
from detx.pipeline.cli import main
from tests.serving.conftest import oracle_examples, push_oracle
from tests.serving.server_process import Server
from tests.serving.test_shadow_canary import NOISY, _Load, _metrics, _value

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Small stages for a test: every request mirrored, half of them answered by the canary, 100 judged per stage.
# The p99 of 100 requests rests on the two slowest: the candidate's first run (its graph is built on the
# first call: these models carry no warm-up file) is one of them. On a shared 2-core machine the slack is
# wide; the p99 criterion itself is tested on exact counts (tests/components/release/rollout/test_criteria.py).
FAST = ("--min-requests", "100", "--shadow-percent", "100", "--canary-percent", "50", "--poll-seconds", "0.3")
FAST += ("--p99-slack-seconds", "0.25")


def _args(server: Server, *args: str) -> list[str]:
    """`detx rollout ...` arguments for the server's push destination and metrics."""
    metrics = f"http://127.0.0.1:{server.metrics_port}/metrics"
    return ["rollout", *args, "--push-destination", server.push_destination, "--metrics-url", metrics]


def _detx(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _answers(dest: str, version: int, examples: list[bytes]) -> list[Detections]:
    fn = tf.saved_model.load(f"{dest}/{version}").signatures["tf_example"]
    return [Detections.from_outputs({k: v.numpy() for k, v in fn(examples=tf.constant([e])).items()}) for e in examples]


def _rolled_back(server: Server, load: _Load, examples: list[bytes]) -> None:
    """Version 2 (noisy) is rolled back in its shadow stage; no client gets its answers; it is retired."""
    dest = server.push_destination
    each = [match(a, b, 0.3) for a, b in zip(_answers(dest, 1, examples), _answers(dest, 2, examples), strict=True)]
    # The premise: over the requests, and on all but one, the noisy candidate agrees with stable well below 0.9.
    assert sum(each, Matching()).agreement < 0.75 and sum(m.agreement < 0.9 for m in each) >= len(each) - 1
    result = _detx(*_args(server, "start", "2", *FAST, "--min-agreement", "0.9"))
    assert result.exit_code == 1, result.output
    assert "rolled back shadow stage failed: " in result.output and "Version 2 rolled back: " in result.output
    assert read_traffic(dest) == TrafficSplit(1)
    seen = load.seen(1)
    server.wait_for(lambda: load.seen(1) > seen + 10, what="version 1 answering the load after the rollback")
    assert set(load.versions) == {1}  # every client answer came from stable: shadow answers never reach one
    shadow = _value(_metrics(server), M.ANSWERS + "_total", version="2", role=M.ROLE_SHADOW, code="OK")
    assert shadow >= 100  # while the candidate answered the mirrored requests
    store = ModelStore(dest)
    assert store.complete_versions() == [1] and store.retired_versions() == [2]
    record = store.lineage_at(os.path.join(dest, ".retired", "2"))["rollout"]
    assert record["state"] == "rolled back" and "agreement: 0." in record["reason"]
    assert next(f for f in record["decisions"][-1]["figures"] if f.startswith("agreement: 0.")).endswith("-> FAILS")


def _promoted(server: Server, load: _Load, tmp_path) -> None:
    """Version 3 (perfect) goes through every stage; the first command is killed and a second continues it."""
    dest = server.push_destination
    # No requests while the first command holds: it stays in the shadow stage, then it is killed.
    load.pause(server)
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
        command = [sys.executable, "-m", "detx.pipeline.cli", *_args(server, "start", "3", *FAST)]
        follower = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        server.wait_for(lambda: "holding" in log_path.read_text(), what="the first command's first reading")
        assert read_traffic(dest) == TrafficSplit(1, 3, shadow_percent=100.0)
        # One command at a time: another is refused, naming the first.
        busy = _detx(*_args(server, "abort", "--reason", "a second command"))
        assert busy.exit_code == 1 and f"pid {follower.pid}" in busy.output and "Stop it first" in busy.output
    finally:
        follower.kill()  # SIGKILL: no clean-up; the kernel releases its lock, its state stays
        follower.wait()
    started = read_state(dest)
    assert started is not None and (started.candidate, started.stage) == (3, "shadow")

    load.resume()
    done = _detx(*_args(server, "start", "3"))  # no options: it continues with the recorded ones
    assert done.exit_code == 0, done.output
    since = f"Continuing the rollout of version 3 against stable 1: shadow stage since {started.stage_started}"
    assert since in done.output
    for line in ("passed shadow stage", "started canary stage", "passed canary stage", "promoted passed the"):
        assert line in done.output, done.output
    assert "agreement: 1.00 over" in done.output
    assert read_traffic(dest) == TrafficSplit(3)
    seen = load.seen(3)
    server.wait_for(lambda: load.seen(3) > seen + 10, what="version 3 answering the load after the promotion")
    state = read_state(dest)
    assert state is not None and state.stage == "promoted"
    # One start of the shadow stage: the restarted command continued it.
    assert [(d["decision"], d["stage"]) for d in state.decisions] == [
        ("started", "shadow"),
        ("passed", "shadow"),
        ("started", "canary"),
        ("passed", "canary"),
        ("promoted", "promoted"),
    ]
    assert ModelStore(dest).lineage(3)["rollout"]["state"] == "promoted"


def test_a_worse_candidate_is_rolled_back_and_a_good_one_promoted_with_no_failed_client_request(tmp_path):
    dest, work = str(tmp_path / "models" / "detx"), tmp_path / "work"
    work.mkdir()
    assert push_oracle(dest, str(work)) == 1
    write_traffic(dest, TrafficSplit(1))  # as the Pusher pins it with release.rollout: progressive
    assert push_oracle(dest, str(work), **NOISY) == 2
    server = Server(dest)
    examples = oracle_examples()
    load = _Load(server, examples)
    try:
        server.wait_for(lambda: load.seen(1) >= 5, what="version 1 answering the load")
        _rolled_back(server, load, examples)
        assert push_oracle(dest, str(work)) == 3  # pushed under load: the pin keeps it out of traffic
        _promoted(server, load, tmp_path)
        load.stop()
        assert load.failures == []  # zero failed client requests through five changes of the split
        assert load.seen(2) == 0
    finally:
        load.stop()
        assert server.stop() == 0
