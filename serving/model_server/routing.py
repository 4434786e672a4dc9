"""Which version answers each request: the traffic split (stable, canary share, shadow share) of `detx serve`.

The split comes from one of two places (`TrafficSource`):

- `FixedTraffic`: `detx serve --canary VERSION --canary-percent P` or
  `--shadow VERSION`: the candidate is fixed, and stable is the version the
  usual policy serves other than the candidate.
- `FileTraffic`: `detx_traffic.json` at the push destination
  (components/release/traffic.py), which `detx rollout` rewrites; the
  VersionManager reads it on every poll of the base path, so the split changes
  on a running server.

`Router` spreads requests that name no version or label deterministically: an
error-diffusion counter sends exactly P of every 100 to the candidate (no
randomness, so tests and benchmarks count exact shares); the same kind of
counter picks exactly `shadow_percent` of every 100 answers stable gives for
mirroring.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from detx.components.model_store import ModelStore
from detx.components.release.traffic import TrafficError, TrafficSplit, read_traffic
from detx.components.release.traffic_metrics import ROLE_CANARY, ROLE_STABLE

LOG = logging.getLogger(__name__)


class TrafficSource(Protocol):
    """Where the wanted split comes from; asked on every poll of the base path."""

    def wanted(self, complete: Collection[int], policy_versions: Collection[int]) -> TrafficSplit | None:
        """The split to serve, given the complete versions on disk and the versions the policy pins (may be empty).

        Raises:
            TrafficError: the split cannot be read (the manager keeps the previous one).
        """
        ...

    def describe(self) -> str:
        """One line for the server's start message."""
        ...


@dataclasses.dataclass(frozen=True)
class FixedTraffic:
    """A split given on the command line.

    Attributes:
        candidate: the version under watch.
        shadow_percent: share of stable's answers mirrored to it (0-100).
        canary_percent: share of the requests naming no version or label it answers (0-100).
    """

    candidate: int
    shadow_percent: float = 0.0
    canary_percent: float = 0.0

    def __post_init__(self) -> None:
        # The same checks as the file's (TrafficSplit), with a placeholder stable version.
        TrafficSplit(self.candidate + 1, self.candidate, self.shadow_percent, self.canary_percent)

    def wanted(self, complete: Collection[int], policy_versions: Collection[int]) -> TrafficSplit | None:
        """Stable is the newest version the policy allows other than the candidate (None: there is none yet)."""
        allowed = [v for v in (policy_versions or complete) if v in complete and v != self.candidate]
        if not allowed:
            return None
        return TrafficSplit(max(allowed), self.candidate, self.shadow_percent, self.canary_percent)

    def describe(self) -> str:
        """E.g. "candidate 4: canary 10%, shadow 0%"."""
        return f"candidate {self.candidate}: canary {self.canary_percent:g}%, shadow {self.shadow_percent:g}%"


@dataclasses.dataclass(frozen=True)
class FileTraffic:
    """The split pinned in `detx_traffic.json` at the push destination (none: the usual policy serves)."""

    push_destination: str

    def wanted(self, complete: Collection[int], policy_versions: Collection[int]) -> TrafficSplit | None:
        """The pinned split while its stable version is complete (as ModelStore.serving_version reads it)."""
        split = read_traffic(self.push_destination)
        if split is None or split.stable not in complete:
            return None
        return split

    def describe(self) -> str:
        """Names the file."""
        return "following detx_traffic.json"


@dataclasses.dataclass(frozen=True)
class ServingView:
    """What serves at one moment, read at once (a request routed by it never meets a half-applied change).

    Attributes:
        name: the model name.
        available: loaded models by version.
        labels: label -> version.
        split: the traffic split in force (None: the newest available version answers).
    """

    name: str
    available: Mapping[int, Any]
    labels: Mapping[str, int]
    split: TrafficSplit | None

    def resolve(self, version: int | None = None, label: str = "") -> tuple[int, Any]:
        """The model a request names: a version, a label, or (neither) stable or the newest available.

        Raises:
            LookupError: nothing matches (the servicer answers NOT_FOUND).
        """
        if label:
            if label not in self.labels:
                raise LookupError(f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        if version is None and self.split is not None:
            version = self.split.stable
        if version is not None:
            if version not in self.available:
                raise LookupError(f"Servable not found for request: Specific({self.name}, {version})")
            return version, self.available[version]
        if not self.available:
            raise LookupError(f"Servable not found for request: Latest({self.name})")
        newest = max(self.available)
        return newest, self.available[newest]


def split_in_force(
    wanted: TrafficSplit | None, current: TrafficSplit | None, loaded: Collection[int]
) -> TrafficSplit | None:
    """The split to route by, given the wanted one and the versions loaded.

    Stable not loaded yet (or failed): the split in force stays as it was. The
    candidate not loaded: stable alone, so nothing is routed or mirrored to a
    version that cannot answer.
    """
    if wanted is None:
        return None
    if wanted.stable not in loaded:
        return current
    if wanted.candidate is None or wanted.candidate in loaded:
        return wanted
    return TrafficSplit(wanted.stable)


class Versions(Protocol):
    """What the router routes from (the VersionManager, versions.py)."""

    @property
    def name(self) -> str:
        """The model name clients use."""
        ...

    @property
    def store(self) -> ModelStore:
        """The model store of the base path."""
        ...

    def view(self) -> ServingView:
        """The loaded versions, the labels and the split in force, read at once."""
        ...


@dataclasses.dataclass(frozen=True)
class Route:
    """Where one request goes.

    Attributes:
        version: the version that answers.
        model: its loaded SavedModel.
        role: ROLE_STABLE, or ROLE_CANARY when the split's candidate answers a client.
        split: the split in force when the request was routed (None: no split).
        candidate: the split's candidate loaded then (version, model), the one a mirror runs (None: none).
    """

    version: int
    model: Any
    role: str
    split: TrafficSplit | None = None
    candidate: tuple[int, Any] | None = None


class _Diffusion:
    """Error diffusion: `take(P)` is True exactly P times in every 100 calls (P may be fractional)."""

    def __init__(self) -> None:
        self._carry = 0.0

    def take(self, percent: float) -> bool:
        self._carry += percent
        if self._carry >= 100.0:
            self._carry -= 100.0
            return True
        return False


class Router:
    """Routes requests by the manager's split in force; thread-safe."""

    def __init__(self, manager: Versions) -> None:
        self._manager = manager
        self._lock = threading.Lock()
        self._split: TrafficSplit | None = None
        self._canary = _Diffusion()
        self._shadow = _Diffusion()

    @property
    def name(self) -> str:
        """The model name clients use."""
        return self._manager.name

    @property
    def manager(self) -> Versions:
        """The version manager routed from."""
        return self._manager

    def _counters(self, split: TrafficSplit | None) -> None:
        """Starts the counters afresh when the split changes (called under the lock)."""
        if split != self._split:
            self._split, self._canary, self._shadow = split, _Diffusion(), _Diffusion()

    def route(self, version: int | None = None, label: str = "", count: bool = True) -> Route:
        """The version a request names (a version or label gets exactly that), else stable or the canary share.

        Args:
            version: the version the request names (None: none).
            label: the label it names ("": none).
            count: whether this request counts toward the canary share (GetModelMetadata's do not).

        Raises:
            LookupError: nothing matches (the servicer answers NOT_FOUND).
        """
        view = self._manager.view()
        split = view.split
        if version is None and not label and split is not None and split.candidate is not None and count:
            with self._lock:
                self._counters(split)
                if self._canary.take(split.canary_percent):
                    version = split.candidate
        number, model = view.resolve(version, label)
        if split is None or split.candidate is None:
            return Route(number, model, ROLE_STABLE, split)
        role = ROLE_CANARY if number == split.candidate else ROLE_STABLE
        candidate = view.available.get(split.candidate)
        return Route(number, model, role, split, None if candidate is None else (split.candidate, candidate))

    def mirror(self, route: Route) -> bool:
        """Whether a successful answer is mirrored to the candidate: `shadow_percent` of every 100 of stable's."""
        split = route.split
        if split is None or route.candidate is None or not split.shadow_percent or route.version != split.stable:
            return False
        with self._lock:
            self._counters(split)
            return self._shadow.take(split.shadow_percent)


def checked_wanted(source: TrafficSource, complete: Collection[int], policy: Collection[int], last: Any) -> Any:
    """`source.wanted(...)`, or `last` when the split cannot be read (logged): clients keep being served."""
    try:
        return source.wanted(complete, policy)
    except (TrafficError, OSError) as e:
        LOG.error("cannot read the traffic split, keeping the previous one: %s", e)
        return last
