"""What `detx ct run` started, and the lock that keeps two retrainings from running at once.

    <state_dir>/ct.lock        held (flock) while a `detx ct run` checks and retrains
    <state_dir>/ct_state.json  every retraining started: key, times, outcome
    <state_dir>/ct_quality.json  the staleness curve and the last offline/online agreement (quality.py)

The lock is an advisory `flock` on a local file: the kernel releases it when
the process dies, so a killed run never leaves the project locked. Object-store
state directories (gs://) cannot be locked this way; there `detx ct run
--kubeflow` relies on KFP (no new run while one of the pipeline's runs is
active) and on the CronJob's `concurrencyPolicy: Forbid`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
from collections.abc import Iterator
from typing import Any

from detx.components import storage

LOCK_FILE = "ct.lock"
STATE_FILE = "ct_state.json"


class Busy(RuntimeError):
    """Another `detx ct run` holds the lock; the message says which."""


@dataclasses.dataclass
class Attempt:
    """One retraining `detx ct run` started.

    Attributes:
        key: `Decision.key`: the served version and spans it was for.
        reasons: why it started.
        started, finished: ISO times ("" while running).
        outcome: "pushed version N", "not pushed: ...", "submitted run ID", "failed: ...".
    """

    key: str
    reasons: list[str]
    started: str
    finished: str = ""
    outcome: str = ""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class State:
    """The attempts recorded in a state directory (local or any TensorFlow file system)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, STATE_FILE)

    def attempts(self) -> list[Attempt]:
        """Every recorded attempt, oldest first."""
        return [Attempt(**a) for a in read_json(self.path).get("attempts", [])]

    def find(self, key: str) -> Attempt | None:
        """The newest attempt for `key`."""
        matching = [a for a in self.attempts() if a.key == key]
        return matching[-1] if matching else None

    def start(self, key: str, reasons: list[str]) -> Attempt:
        """Records a retraining as started."""
        attempt = Attempt(key, reasons, _now())
        self._write([*self.attempts(), attempt])
        return attempt

    def finish(self, attempt: Attempt, outcome: str) -> None:
        """Records how a started retraining ended."""
        attempts = self.attempts()
        for a in attempts:
            if a.key == attempt.key and a.started == attempt.started:
                a.finished, a.outcome = _now(), outcome
        self._write(attempts)

    def _write(self, attempts: list[Attempt]) -> None:
        write_json(self.path, {"attempts": [dataclasses.asdict(a) for a in attempts]})


def read_json(path: str) -> dict[str, Any]:
    """A JSON state file ({} when it does not exist yet)."""
    doc: dict[str, Any] | None = storage.read_json(path, "delete it to start the state afresh")
    return doc or {}


def write_json(path: str, doc: dict[str, Any]) -> None:
    """Writes a JSON state file whole or not at all: a temporary name, then a rename over the old one."""
    storage.write_atomic(path, json.dumps(doc, indent=1))


@contextlib.contextmanager
def exclusive(directory: str) -> Iterator[None]:
    """Holds the state directory's lock; raises Busy at once if another process holds it.

    Object-store directories are not locked (see the module docstring).
    """
    if "://" in directory and not directory.startswith("file://"):
        yield
        return
    path = os.path.join(directory.removeprefix("file://"), LOCK_FILE)

    def busy(holder: str) -> Busy:
        return Busy(
            f"another `detx ct run` is checking or retraining ({holder or 'another process'}); "
            "not starting a second one"
        )

    with storage.file_lock(path, f"pid {os.getpid()} since {_now()}", busy):
        yield
