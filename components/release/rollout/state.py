"""What a rollout has done, kept beside the models so a restarted `detx rollout` continues; and its lock.

    <push destination>/.rollout/state.json   the rollout: candidate, stable, stage, the counts when the
                                             stage started, the options, every decision
    <push destination>/.rollout/lock         held while a `detx rollout` command runs; names its holder

TF Serving and `detx serve` read numeric directories only, so `.rollout/` is
invisible to them. The state is replaced whole (written beside, renamed over):
a reader never sees half of it.

The lock: one `detx rollout` command at a time per push destination. On a
local file system it is an advisory `flock`, which the kernel releases when
the holder dies, so a killed command's lock is taken over by the next one. An
object store cannot lock; there the lock file names its holder (host, pid) and
is taken over when that process is gone from this host, as `ModelStore` clears
the staging directories of killed pushes; a holder on another host must be
removed by hand (the message says how).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from detx.components import storage

# ModelStore's test of a push's process, which clears a killed push's staging directory: one home.
from detx.components.model_store import _pid_alive
from detx.components.release.rollout.signals import Counts, Histogram, ShadowCounts, VersionCounts

ROLLOUT_DIR = ".rollout"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
# The stages of a rollout in progress, and how one ends.
ACTIVE = ("shadow", "canary")
PROMOTED, ROLLED_BACK, ABORTED = "promoted", "rolled back", "aborted"


class RolloutBusy(RuntimeError):
    """Another `detx rollout` command holds the lock; the message names it."""


def now() -> str:
    """The time, as every rollout record writes it."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclasses.dataclass
class RolloutState:
    """One rollout, as `state.json` holds it.

    Attributes:
        candidate: the version rolled out.
        stable: the version serving before it (and after it, if it fails).
        stage: "shadow", "canary" (in progress), or how it ended: "promoted", "rolled back", "aborted".
        started: when the rollout started.
        stage_started: when the current stage started.
        baseline: the cumulative counts read when the stage started (`counts_to_json`).
        options: the `RolloutOptions` it runs with.
        decisions: every decision, oldest first (stage started, passed, failed, promoted...).
        finished: when it ended ("" while in progress).
        reason: why it ended.
    """

    candidate: int
    stable: int
    stage: str
    started: str
    stage_started: str
    baseline: dict[str, Any]
    options: dict[str, Any]
    decisions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    finished: str = ""
    reason: str = ""

    @property
    def active(self) -> bool:
        """Whether the rollout is still in progress."""
        return self.stage in ACTIVE


def rollout_dir(push_destination: str) -> str:
    """Where a push destination's rollout state and lock live."""
    return os.path.join(push_destination.rstrip("/"), ROLLOUT_DIR)


def read_state(push_destination: str) -> RolloutState | None:
    """The last rollout of a push destination (None: never any).

    Raises:
        ValueError: the file is not a rollout state (it names the file).
    """
    path = os.path.join(rollout_dir(push_destination), STATE_FILE)
    fix = "move it away to start afresh"
    data = storage.read_json(path, fix)
    if data is None:
        return None
    try:
        return RolloutState(**data)
    except TypeError as e:
        raise ValueError(f"{path} is not a rollout state ({e}); {fix}") from None


def write_state(push_destination: str, state: RolloutState) -> None:
    """Replaces the state whole: written beside, then renamed over."""
    path = os.path.join(rollout_dir(push_destination), STATE_FILE)
    storage.write_atomic(path, json.dumps(dataclasses.asdict(state), indent=1, sort_keys=True) + "\n")


def _histogram_json(histogram: Histogram | None) -> Any:
    if histogram is None:
        return None
    # JSON has no infinity: the last bound is always +Inf (Prometheus style), so it is written as "+Inf".
    return {
        "buckets": [["+Inf" if le == float("inf") else le, c] for le, c in histogram.buckets],
        "sum": histogram.sum,
        "count": histogram.count,
    }


def _histogram(data: Any) -> Histogram | None:
    if data is None:
        return None
    return Histogram(tuple((float(le), float(c)) for le, c in data["buckets"]), data["sum"], data["count"])


def counts_to_json(counts: Counts) -> dict[str, Any]:
    """Counts as the state file keeps them."""

    def version(v: VersionCounts) -> dict[str, Any]:
        return {
            "answers": dict(v.answers),
            "latency": _histogram_json(v.latency),
            "top_score": _histogram_json(v.top_score),
        }

    return {
        "stable": version(counts.stable),
        "canary": version(counts.canary),
        "shadow": version(counts.shadow),
        "comparisons": None if counts.comparisons is None else dataclasses.asdict(counts.comparisons),
    }


def counts_from_json(data: dict[str, Any]) -> Counts:
    """The inverse of `counts_to_json`."""

    def version(v: dict[str, Any]) -> VersionCounts:
        return VersionCounts(dict(v["answers"]), _histogram(v["latency"]), _histogram(v["top_score"]))

    comparisons = data.get("comparisons")
    return Counts(
        stable=version(data["stable"]),
        canary=version(data["canary"]),
        shadow=version(data["shadow"]),
        comparisons=None if comparisons is None else ShadowCounts(**comparisons),
    )


def _holder(command: str) -> str:
    return f"`{command}` (pid {os.getpid()} on {socket.gethostname()}, since {now()})"


def _busy(path: str, holder: str) -> RolloutBusy:
    return RolloutBusy(
        f"another detx rollout command is running on this push destination: {holder or 'unknown'}; "
        f"one at a time (its lock: {path}). Stop it first (Ctrl-C; the rollout keeps its state and "
        "`detx rollout start` continues it)"
    )


@contextlib.contextmanager
def exclusive(push_destination: str, command: str) -> Iterator[None]:
    """Holds the push destination's rollout lock while `command` runs.

    Raises:
        RolloutBusy: another live process holds it (the message names it).
    """
    directory = rollout_dir(push_destination)
    if not storage.is_local(directory):
        with _object_store_lock(directory, command):
            yield
        return
    path = os.path.join(storage.strip_file_scheme(directory), LOCK_FILE)
    with storage.file_lock(path, _holder(command), lambda holder: _busy(path, holder)):
        yield


@contextlib.contextmanager
def _object_store_lock(directory: str, command: str) -> Iterator[None]:
    path = os.path.join(directory, LOCK_FILE)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            holder: dict[str, Any] = json.loads(f.read() or "{}")
        pid = holder.get("pid")
        gone = holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)
        if not gone:
            text = f"{holder.get('command')} (pid {pid} on {holder.get('host')}, since {holder.get('since')})"
            raise RolloutBusy(f"{_busy(path, text)}; if that process is gone, delete {path}")
        tf.io.gfile.remove(path)  # the holder is gone: its lock is taken over
    tf.io.gfile.makedirs(directory)
    me = {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "since": now()}
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(me))
    try:
        yield
    finally:
        tf.io.gfile.remove(path)
