"""Which versions of a model are loaded, kept in step with its base path the way TF Serving does it.

- Only complete numeric version directories are candidates (see
  `detx.components.model_store`): a push in progress is invisible.
- Policy: the newest version (TF Serving's default `latest {num_versions: 1}`),
  or the versions pinned with `specific` (roll back or canary by config).
- Availability-preserving swaps: a version that is no longer wanted is
  unloaded only once a wanted version is AVAILABLE, so a new version that
  fails to load leaves the old one serving. A failed load is retried a few
  times, then the version stays in END with its error (GetModelStatus shows it).
- Labels (`stable`, `canary`) map to versions and may only point at a loaded version.
- A traffic split (routing.py), when its source gives one, decides instead of
  the policy: exactly its versions are loaded and its labels (`stable`,
  `canary`) apply. It takes effect once its stable version is AVAILABLE (its
  candidate, once that one is too), so a request is never routed to a version
  still loading.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detx.components.model_store import ModelStore
from detx.components.release.traffic import TrafficSplit
from detx.serving.model_server.routing import ServingView, TrafficSource, checked_wanted, split_in_force

LOG = logging.getLogger(__name__)


class State(enum.IntEnum):
    """TF Serving's ModelVersionStatus.State values."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclasses.dataclass
class VersionState:
    """One version as the server sees it.

    Attributes:
        version: the number.
        path: its directory.
        state: where it is in its life.
        error: why it failed to load ("" if it did not).
        attempts: load attempts so far.
        model: the loaded SavedModel (None unless AVAILABLE).
        last_attempt: monotonic time of the last load attempt.
    """

    version: int
    path: str
    state: State = State.START
    error: str = ""
    attempts: int = 0
    model: Any = None
    last_attempt: float = 0.0


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """What to serve.

    Attributes:
        specific: serve exactly these versions (empty: the newest one).
        labels: label -> version (only loaded versions may be labelled).
    """

    specific: tuple[int, ...] = ()
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)


def load_saved_model(path: str) -> Any:
    """Loads a SavedModel (TensorFlow import deferred: the module is importable without it)."""
    import tensorflow as tf

    return tf.saved_model.load(path)


class VersionManager:
    """Keeps the loaded versions of one model in step with its base path.

    Args:
        name: the model name clients use.
        push_destination: the model base path (push destination).
        policy: which versions to serve.
        loader: loads one version directory (tests pass a failing one).
        max_load_attempts: tries per version before giving up (TF Serving: 5).
        retry_interval: seconds between tries (TF Serving: 60).
        on_change: called after any state change (metrics).
        traffic: where a traffic split comes from (None: the policy alone decides).
    """

    def __init__(
        self,
        name: str,
        push_destination: str,
        policy: VersionPolicy | None = None,
        loader: Callable[[str], Any] = load_saved_model,
        max_load_attempts: int = 5,
        retry_interval: float = 60.0,
        on_change: Callable[[VersionManager], None] | None = None,
        traffic: TrafficSource | None = None,
    ) -> None:
        self.name = name
        self.store = ModelStore(push_destination)
        self.policy = policy or VersionPolicy()
        self._loader = loader
        self._max_attempts = max_load_attempts
        self._retry_interval = retry_interval
        self._on_change = on_change
        self._lock = threading.Lock()
        self._versions: dict[int, VersionState] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._traffic = traffic
        self._wanted: TrafficSplit | None = None  # the source's latest answer
        self._split: TrafficSplit | None = None  # the split in force (its versions are AVAILABLE)

    # Reading (any thread) ------------------------------------------------

    def snapshot(self) -> list[VersionState]:
        """Every version the manager knows, oldest first (copies; safe to read)."""
        with self._lock:
            return [dataclasses.replace(v) for v in sorted(self._versions.values(), key=lambda v: v.version)]

    def available(self) -> dict[int, Any]:
        """Loaded models by version."""
        with self._lock:
            return {v.version: v.model for v in self._versions.values() if v.state == State.AVAILABLE}

    def view(self) -> ServingView:
        """The loaded versions, the labels and the split in force, read at once."""
        with self._lock:
            available = {v.version: v.model for v in self._versions.values() if v.state == State.AVAILABLE}
            labels = dict(self.policy.labels)
            if self._split is not None:
                labels.update(self._split.labels)
            return ServingView(self.name, available, labels, self._split)

    def traffic(self) -> TrafficSplit | None:
        """The split in force (None: the policy alone decides)."""
        with self._lock:
            return self._split

    def resolve(self, version: int | None = None, label: str = "") -> tuple[int, Any]:
        """The model a request names (`ServingView.resolve` on the current view).

        Raises:
            LookupError: nothing matches (the servicer answers NOT_FOUND).
        """
        return self.view().resolve(version, label)

    # Syncing -------------------------------------------------------------

    def _aspired(self, on_disk: Sequence[int]) -> set[int]:
        if self._wanted is not None:
            return {v for v in self._wanted.versions if v in on_disk}
        if self.policy.specific:
            return {v for v in self.policy.specific if v in on_disk}
        return {max(on_disk)} if on_disk else set()

    def sync(self) -> None:
        """One pass: load wanted versions, then unload unwanted ones if that keeps something serving."""
        listing = self.store.versions()
        on_disk = {v.version: v.path for v in listing if v.complete}
        if self._traffic is not None:
            self._wanted = checked_wanted(self._traffic, on_disk, self.policy.specific, self._wanted)
        aspired = self._aspired(sorted(on_disk))
        changed = self._note_incomplete([v for v in listing if not v.complete], on_disk)
        for version in sorted(aspired):
            with self._lock:
                current = self._versions.get(version)
                if current is None:
                    current = self._versions[version] = VersionState(version, on_disk[version])
                    changed = True
                if current.state == State.END and not current.error:
                    current.attempts = 0  # unloaded earlier (e.g. after a newer version), wanted again: a rollback
                failed = current.state == State.END and bool(current.error)
                due = (
                    current.state == State.START
                    or (current.state == State.END and not failed)
                    or (
                        failed
                        and current.attempts < self._max_attempts
                        and time.monotonic() - current.last_attempt >= self._retry_interval
                    )
                )
                if not due:
                    continue
                current.state, current.attempts, current.last_attempt = (
                    State.LOADING,
                    current.attempts + 1,
                    time.monotonic(),
                )
            self._notify()
            try:
                model = self._loader(current.path)
            except Exception as e:  # a broken version must never take the server down
                LOG.warning(
                    "model %s version %d failed to load (attempt %d): %s", self.name, version, current.attempts, e
                )
                with self._lock:
                    current.state, current.error = State.END, f"{type(e).__name__}: {e}"
            else:
                LOG.info("model %s version %d is available", self.name, version)
                with self._lock:
                    current.state, current.error, current.model = State.AVAILABLE, "", model
            changed = True
        listed = {v.version for v in listing}
        with self._lock:
            changed |= self._apply_split()
            # Under a split, its stable version must serve before others go (it takes the default traffic).
            serving = {self._wanted.stable} if self._wanted is not None else aspired
            serving_wanted = any(self._versions[v].state == State.AVAILABLE for v in serving if v in self._versions)
            for version, state in list(self._versions.items()):
                if version in aspired or state.state not in (State.AVAILABLE, State.END, State.START):
                    continue
                gone = version not in listed
                # Unload only when a wanted version serves instead, or the version's directory is gone.
                if state.state == State.AVAILABLE and not (serving_wanted or gone):
                    continue
                if state.state == State.AVAILABLE:
                    LOG.info("model %s version %d unloaded", self.name, version)
                state.state, state.model = State.END, None
                if gone:
                    del self._versions[version]
                changed = True
        if changed:
            self._notify()

    def _apply_split(self) -> bool:
        """Puts the wanted split in force as far as its versions are loaded (under the lock); True if it changed."""
        before = self._split
        loaded = {n for n, v in self._versions.items() if v.state == State.AVAILABLE}
        self._split = split_in_force(self._wanted, before, loaded)
        if self._split != before:
            LOG.info("model %s traffic: %s", self.name, self._split or "the version policy")
        return self._split != before

    def _note_incomplete(self, incomplete: Sequence[Any], complete: Mapping[int, str]) -> bool:
        """Shows numeric directories without saved_model.pb in the status, never loading them.

        A push to an object store in progress looks like this for a moment; one
        that stays so is a broken push. Either way, it must not be loaded.
        """
        changed = False
        with self._lock:
            for v in incomplete:
                if v.version not in self._versions:
                    self._versions[v.version] = VersionState(
                        v.version,
                        v.path,
                        State.START,
                        error=f"{v.path} has no saved_model.pb: a push still copying, or a broken one; not loaded",
                    )
                    changed = True
            present = {v.version for v in incomplete} | set(complete)
            for version in [n for n, s in self._versions.items() if s.state == State.START and n not in present]:
                del self._versions[version]
                changed = True
        return changed

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def start(self, poll_seconds: float = 1.0) -> None:
        """Syncs once now, then every `poll_seconds` on a background thread."""
        self.sync()

        def loop() -> None:
            while not self._stop.wait(poll_seconds):
                try:
                    self.sync()
                except Exception:  # keep watching: the next poll may succeed (e.g. a flaky bucket)
                    LOG.exception("polling %s failed", self.store.root)

        self._thread = threading.Thread(target=loop, name=f"versions-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
