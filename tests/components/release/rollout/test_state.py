"""The rollout's state file and lock: whole replacement, counts round-trip, one command at a time, takeover."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

from detx.components.release.rollout import criteria
from detx.components.release.rollout.options import RolloutOptions
from detx.components.release.rollout.signals import Counts, Histogram, ShadowCounts, VersionCounts
from detx.components.release.rollout.state import (
    RolloutBusy,
    RolloutState,
    counts_from_json,
    counts_to_json,
    exclusive,
    read_state,
    rollout_dir,
    write_state,
)


def test_counts_round_trip_through_json_with_the_inf_bucket():
    latency = Histogram(((0.1, 3.0), (math.inf, 4.0)), 0.9, 4.0)
    counts = Counts(
        stable=VersionCounts({"OK": 4.0}, latency, None),
        canary=VersionCounts({}, criteria.NOTHING_YET.canary.latency, None),
        shadow=VersionCounts({"OK": 1.0, "INTERNAL": 2.0}, latency, latency),
        comparisons=ShadowCounts(1, 2, 3, 4, 5, 6),
    )
    assert counts_from_json(counts_to_json(counts)) == counts
    assert '"+Inf"' in str(counts_to_json(counts)).replace("'", '"')  # JSON has no infinity


def test_the_state_is_replaced_whole(tmp_path):
    root = str(tmp_path / "models")
    assert read_state(root) is None
    state = RolloutState(2, 1, "shadow", "t0", "t0", counts_to_json(criteria.NOTHING_YET), RolloutOptions().to_json())
    write_state(root, state)
    write_state(root, state)
    assert read_state(root) == state and read_state(root).active
    assert os.listdir(rollout_dir(root)) == ["state.json"]  # no staging file left behind
    with open(os.path.join(rollout_dir(root), "state.json"), "w") as f:
        f.write("{")
    with pytest.raises(ValueError, match=r"state.json is not JSON .*move it away"):
        read_state(root)
    with open(os.path.join(rollout_dir(root), "state.json"), "w") as f:
        f.write('{"colour": "blue"}')
    with pytest.raises(ValueError, match=r"state.json is not a rollout state .*move it away"):
        read_state(root)


def _hold(root, held):
    """A forked process (it has detx imported already) that holds the lock until it is killed."""
    with exclusive(root, "detx rollout start 7"):
        held.set()
        signal.pause()


def test_one_command_at_a_time_and_a_dead_holders_lock_is_taken_over(tmp_path):
    root = str(tmp_path / "models")
    context = multiprocessing.get_context("fork")
    held = context.Event()
    holder = context.Process(target=_hold, args=(root, held), daemon=True)
    holder.start()
    try:
        assert held.wait(timeout=60)
        busy = rf"`detx rollout start 7` \(pid {holder.pid} on .*Stop it first"
        with pytest.raises(RolloutBusy, match=busy), exclusive(root, "detx rollout start 8"):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
    # The kernel released the killed holder's lock.
    with exclusive(root, "detx rollout start 8"), open(os.path.join(rollout_dir(root), "lock")) as f:
        assert f.read().startswith(f"`detx rollout start 8` (pid {os.getpid()} on ")


def test_on_an_object_store_the_lock_names_its_holder_and_a_gone_one_is_taken_over(tmp_path):
    import json
    import socket

    import tensorflow as tf

    root = f"ram://{tmp_path}/models"  # TensorFlow's in-memory file system: no flock, like gs://
    lock = f"{rollout_dir(root)}/lock"
    with exclusive(root, "detx rollout start 3"):
        with tf.io.gfile.GFile(lock) as f:
            assert json.loads(f.read())["command"] == "detx rollout start 3"
        busy = rf"detx rollout start 3 \(pid {os.getpid()}.*if that process is gone"
        with pytest.raises(RolloutBusy, match=busy), exclusive(root, "detx rollout abort"):
            pass
    assert not tf.io.gfile.exists(lock)
    script = "import os; print(os.getpid())"  # a process that has exited: its pid names no one
    gone = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    dead = {"command": "detx rollout start 3", "pid": int(gone.stdout), "host": socket.gethostname(), "since": "t"}
    with tf.io.gfile.GFile(lock, "w") as f:
        f.write(json.dumps(dead))
    with exclusive(root, "detx rollout abort"), tf.io.gfile.GFile(lock) as f:
        assert json.loads(f.read())["pid"] == os.getpid()
