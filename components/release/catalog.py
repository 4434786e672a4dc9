"""The versions of a push destination as rows for listings: served, complete, incomplete and pending."""

from __future__ import annotations

from typing import Any

from detx.components.model_store import ModelStore


def _row(version: int, path: str, complete: bool, lineage: dict[str, Any], **state: bool) -> dict[str, Any]:
    metrics = lineage.get("metrics", {})
    tflite = (lineage.get("tflite") or {}).get("models", {})
    return {
        "version": version,
        "complete": complete,
        "map": metrics.get("map"),
        "map_50": metrics.get("map_50"),
        "pushed_at": lineage.get("pushed_at"),
        "spans": list(lineage.get("data", {}).get("spans", [])),
        "path": path,
        # The warm-start chain: the version this one's training started from (the Trainer's facts).
        "warm_start_version": ((lineage.get("training") or {}).get("warm_start") or {}).get("version"),
        "tflite": [kind for kind, entry in tflite.items() if entry.get("shipped")],
        **state,
    }


def describe(store: ModelStore) -> list[dict[str, Any]]:
    """One row per version: number, state, mAP, spans, push time, warm-start origin and TFLite models shipped."""
    serving = store.serving_version()
    rows = [
        _row(
            v.version,
            v.path,
            v.complete,
            store.lineage(v.version) if v.complete else {},
            serving=v.version == serving,
            pending=False,
        )
        for v in store.versions()
    ]
    for version in store.pending_versions():
        path = store.pending_path(version)
        rows.append(_row(version, path, True, store.lineage_at(path), serving=False, pending=True))
    return rows
