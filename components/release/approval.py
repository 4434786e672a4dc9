"""Human sign-off: pending candidates become the served version, or are retired, by a named person.

With `release.approval: required` the Pusher publishes a blessed,
infra-blessed model into `<push destination>/.pending/<N>/`, which TF
Serving's latest-version policy and `detx serve` never load (they read
numeric directories only). Then:

- `approve`: re-checks the candidate if production changed since it was
  evaluated, records who, when and why in its lineage and card, and moves it
  to `<N>/` in one rename (object stores: a copy with saved_model.pb last),
  which makes it the served version.
- `reject`: records the same and moves it to `.retired/<N>/`.
- A newer candidate supersedes an older pending one (`supersede`): only the
  newest blessed model can be approved, since approving an older one would
  serve a model that lost to what came after it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable
from typing import Any

from detx.components.model_store import RETIRED_DIR, LineageFiles, ModelStore, ModelStoreError, write_lineage

# Re-checks a candidate against the version served now: returns the recheck record
# ({"blessed": bool, "reasons": [...], ...}); see `detx.components.release.recheck`.
Recheck = Callable[[ModelStore, int, dict[str, Any], int], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Decision:
    """What an approval or rejection did.

    Attributes:
        version: the candidate.
        state: "approved" or "rejected" (or "refused": the re-check failed; nothing moved).
        path: where the candidate is now.
        previous: the version served before.
        recheck: the re-check record ({} when production had not changed).
    """

    version: int
    state: str
    path: str
    previous: int | None
    recheck: dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _pending_lineage(store: ModelStore, version: int) -> dict[str, Any]:
    if version not in store.pending_versions():
        pending = ", ".join(map(str, store.pending_versions())) or "none"
        raise ModelStoreError(
            f"version {version} is not waiting for approval in {store.root} (pending: {pending}); "
            "`detx models` lists versions"
        )
    return store.lineage_at(store.pending_path(version))


def _record(lineage: dict[str, Any], state: str, by: str, reason: str, **extra: Any) -> dict[str, Any]:
    if not by.strip() or not reason.strip():
        raise ModelStoreError("an approval decision needs a name (--by) and a reason (--reason)")
    approval = {**lineage.get("approval", {}), "required": True, "state": state, "by": by, "at": _now()}
    return {**lineage, "approval": {**approval, "reason": reason, **extra}}


def production_changed(store: ModelStore, lineage: dict[str, Any]) -> int | None:
    """The version served now if it is not the one the candidate was evaluated against, else None."""
    serving = store.serving_version()
    evaluated_against = lineage.get("baseline", {}).get("version")
    return serving if serving is not None and serving != evaluated_against else None


def approve(
    store: ModelStore, version: int, by: str, reason: str, recheck: Recheck, derived: LineageFiles | None = None
) -> Decision:
    """Makes a pending candidate the served version.

    Args:
        store: the push destination.
        version: the pending candidate.
        by: who approves (recorded).
        reason: why (recorded).
        recheck: evaluates the candidate against the version served now when that is
            not the one it was evaluated against; a failed re-check refuses the approval.
        derived: re-renders files from the updated lineage (the model card).

    Raises:
        ModelStoreError: no such pending candidate, no name or reason, or a newer version is served.
    """
    lineage = _pending_lineage(store, version)
    serving = store.serving_version()
    if serving is not None and serving > version:
        raise ModelStoreError(
            f"version {serving}, newer than candidate {version}, is served now: approving {version} would not "
            f"serve it (TF Serving serves the newest); reject it, and re-run the pipeline for a new candidate"
        )
    checked: dict[str, Any] = {}
    changed = production_changed(store, lineage)
    if changed is not None:
        checked = recheck(store, version, lineage, changed)
        if not checked.get("blessed"):
            path = store.pending_path(version)
            write_lineage(path, {**lineage, "approval": {**lineage.get("approval", {}), "recheck": checked}}, derived)
            return Decision(version, "refused", path, serving, checked)
    updated = _record(lineage, "approved", by, reason, **({"recheck": checked} if checked else {}))
    source = store.pending_path(version)
    write_lineage(source, updated, derived)
    store.move(source, store.path(version))
    return Decision(version, "approved", store.path(version), serving, checked)


def reject(store: ModelStore, version: int, by: str, reason: str, derived: LineageFiles | None = None) -> Decision:
    """Retires a pending candidate; it is never served and its number is never reused.

    Raises:
        ModelStoreError: no such pending candidate, or no name or reason.
    """
    lineage = _pending_lineage(store, version)
    source = store.pending_path(version)
    write_lineage(source, _record(lineage, "rejected", by, reason), derived)
    target = os.path.join(store.root, RETIRED_DIR, str(version))
    store.move(source, target)
    return Decision(version, "rejected", target, store.serving_version(), {})


def supersede(store: ModelStore, newer: int, derived: LineageFiles | None = None) -> list[int]:
    """Retires every pending candidate older than `newer` (a new candidate arrived); returns their numbers."""
    retired = []
    for version in store.pending_versions():
        if version >= newer:
            continue
        source = store.pending_path(version)
        lineage = store.lineage_at(source)
        approval = {
            **lineage.get("approval", {}),
            "state": "superseded",
            "by": "detx pusher",
            "at": _now(),
            "reason": f"superseded by candidate {newer} before anyone approved it",
        }
        write_lineage(source, {**lineage, "approval": approval}, derived)
        store.move(source, os.path.join(store.root, RETIRED_DIR, str(version)))
        retired.append(version)
    return retired
