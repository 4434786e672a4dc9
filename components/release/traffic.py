"""Which versions take live traffic, and how much: the traffic split `detx rollout` writes and model servers follow.

TF Serving cannot split traffic between versions: its latest-version policy
gives the newest complete version every request that names none. A progressive
release needs the old version to keep serving while the new one is watched, so
the split is pinned in a file at the root of the push destination,
`detx_traffic.json` (TF Serving ignores it: it loads numeric directories only):

    {"stable": 3, "candidate": 4, "shadow_percent": 10.0, "canary_percent": 0.0}

- `stable` answers every request that names no version or label, except the
  canary share; while the file exists, a newer version pushed beside it takes no
  traffic until a rollout promotes it (`ModelStore.serving_version` reads the pin).
- `candidate` (optional) is loaded beside it. `shadow_percent` of the requests
  stable answers are mirrored to it off the request path (clients never see its
  answers); `canary_percent` of the requests that name no version or label are
  answered by it.
- Labels: `stable` and `canary` name the two versions, as in
  serving/k8s/overlays/canary.

`detx serve` re-reads the file on every poll of the base path; on Kubernetes,
`detx rollout` writes the same split into the rollout overlay's pins and route
weights instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

from detx.components import storage

TRAFFIC_FILE = "detx_traffic.json"


class TrafficError(ValueError):
    """A traffic split that cannot be served (the message says why and what to do)."""


@dataclasses.dataclass(frozen=True)
class TrafficSplit:
    """Live traffic between a stable version and, optionally, a candidate.

    Attributes:
        stable: the version that answers requests naming no version or label.
        candidate: the version under watch (None: stable takes everything).
        shadow_percent: share of stable's requests also sent to the candidate, off the request path (0-100).
        canary_percent: share of the requests naming no version or label that the candidate answers (0-100).
    """

    stable: int
    candidate: int | None = None
    shadow_percent: float = 0.0
    canary_percent: float = 0.0

    def __post_init__(self) -> None:
        if self.stable < 1:
            raise TrafficError(f"the stable version must be a version number (1 or more), got {self.stable}")
        for name in ("shadow_percent", "canary_percent"):
            value = getattr(self, name)
            if not 0.0 <= value <= 100.0:
                raise TrafficError(f"{name} must be between 0 and 100, got {value}")
        if self.candidate is None and (self.shadow_percent or self.canary_percent):
            raise TrafficError("a shadow or canary share needs a candidate version")
        if self.candidate is not None and self.candidate == self.stable:
            raise TrafficError(f"the candidate is the stable version ({self.stable}); name another version")

    @property
    def versions(self) -> tuple[int, ...]:
        """The versions a model server must have loaded: stable, then the candidate if any."""
        return (self.stable,) if self.candidate is None else (self.stable, self.candidate)

    @property
    def labels(self) -> dict[str, int]:
        """Version labels: `stable`, and `canary` for the candidate."""
        return {"stable": self.stable} if self.candidate is None else {"stable": self.stable, "canary": self.candidate}

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, source: str = TRAFFIC_FILE) -> TrafficSplit:
        """Reads the file's content.

        Raises:
            TrafficError: not an object with these fields and values.
        """
        if not isinstance(data, dict) or "stable" not in data:
            raise TrafficError(f"{source} must be a JSON object with at least a 'stable' version")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TrafficError(f"{source} has unknown fields {unknown}")
        try:
            return cls(
                stable=int(data["stable"]),
                candidate=None if data.get("candidate") is None else int(data["candidate"]),
                shadow_percent=float(data.get("shadow_percent", 0.0)),
                canary_percent=float(data.get("canary_percent", 0.0)),
            )
        except (TypeError, ValueError) as e:
            if isinstance(e, TrafficError):
                raise
            raise TrafficError(f"{source}: {e}") from None


def traffic_path(push_destination: str) -> str:
    """Where the split of a push destination lives."""
    return os.path.join(push_destination.rstrip("/"), TRAFFIC_FILE)


def read_traffic(push_destination: str) -> TrafficSplit | None:
    """The pinned split, or None when there is none (the latest-version policy serves).

    Raises:
        TrafficError: the file exists but does not hold a valid split (fix or delete it).
    """
    path = traffic_path(push_destination)
    data = storage.read_json(path, "fix it or delete it to serve the newest version", TrafficError)
    return None if data is None else TrafficSplit.from_json(data, path)


def write_traffic(push_destination: str, split: TrafficSplit | None) -> None:
    """Pins `split` (None: removes the pin, so the latest-version policy serves again).

    A reader never sees half a file: locally it is written beside and renamed
    over; an object store replaces an object whole.
    """
    path = traffic_path(push_destination)
    if split is None:
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
        return
    storage.write_atomic(path, json.dumps(split.to_json(), indent=2, sort_keys=True) + "\n")
