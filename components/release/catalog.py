"""The versions of a push destination as rows for listings: served, complete, incomplete and pending."""

from __future__ import annotations

from typing import Any

from detx.components.model_store import ModelStore


def describe(store: ModelStore) -> list[dict[str, Any]]:
    """One row per version for listings: number, complete, serving, mAP, the data spans and when it was pushed."""
    serving = store.serving_version()
    rows = []
    for v in store.versions():
        lineage = store.lineage(v.version) if v.complete else {}
        metrics = lineage.get("metrics", {})
        rows.append(
            {
                "version": v.version,
                "complete": v.complete,
                "serving": v.version == serving,
                "map": metrics.get("map"),
                "map_50": metrics.get("map_50"),
                "pushed_at": lineage.get("pushed_at"),
                "spans": list(lineage.get("data", {}).get("spans", [])),
                "path": v.path,
                "pending": False,
            }
        )
    for version in store.pending_versions():
        lineage = store.lineage_at(store.pending_path(version))
        metrics = lineage.get("metrics", {})
        rows.append(
            {
                "version": version,
                "complete": True,
                "serving": False,
                "map": metrics.get("map"),
                "map_50": metrics.get("map_50"),
                "pushed_at": lineage.get("pushed_at"),
                "spans": list(lineage.get("data", {}).get("spans", [])),
                "path": store.pending_path(version),
                "pending": True,
            }
        )
    return rows
