"""The model-quality part of `detx ct check`: the staleness curve (cached) and offline/online agreement.

    <state_dir>/ct_quality.json
      {"staleness": [one point per (version, span) ever scored],
       "agreement": {"at": ..., "versions": [the last check's verdict per version]}}

Each (version, span) is scored once: versions never change and spans are
never replaced (`spans.add_span`), so a cached point stays true. Only the
newest check's agreement is kept; the request log is the history.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detx.components.data.ingest_options import IngestOptions
from detx.components.model_store import PENDING_DIR, RETIRED_DIR, ModelStore
from detx.pipeline.ct import agreement as agreement_lib
from detx.pipeline.ct import staleness
from detx.pipeline.ct.state import read_json, write_json
from detx.serving.model_server import request_log

QUALITY_FILE = "ct_quality.json"


@dataclasses.dataclass(frozen=True)
class QualityOptions:
    """What the check needs beyond `ct.*` to score staleness and keep its record.

    Attributes:
        state_dir: where `ct_quality.json` goes (`detx ct run`'s state directory).
        splits: the project's `data.splits` (which images of a span are its eval split).
        max_staleness_drop: mAP@0.5 points the served version may lose on the newest
            scored span against its own eval mAP@0.5 before a retraining is due (0: never;
            the curve is then only reported).
    """

    state_dir: str
    splits: Mapping[str, int]
    max_staleness_drop: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_staleness_drop <= 1.0:
            raise ValueError(
                f"the max staleness drop must be in [0, 1] (mAP@0.5 points), got {self.max_staleness_drop}"
            )


class QualityRecord:
    """`ct_quality.json` in a state directory (local or any TensorFlow file system)."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, QUALITY_FILE)

    def points(self, version: int | None = None) -> list[staleness.Point]:
        """The scored points (of one version), by version then span."""
        points = [staleness.Point.from_dict(p) for p in read_json(self.path).get("staleness", [])]
        return sorted((p for p in points if version is None or p.version == version), key=lambda p: (p.version, p.span))

    def add(self, points: Sequence[staleness.Point]) -> None:
        """Records points, replacing any of the same (version, span)."""
        doc = read_json(self.path)
        new = {(p.version, p.span) for p in points}
        kept = [p for p in doc.get("staleness", []) if (p["version"], p["span"]) not in new]
        doc["staleness"] = sorted([*kept, *(p.to_dict() for p in points)], key=lambda p: (p["version"], p["span"]))
        write_json(self.path, doc)

    def agreement(self) -> dict[str, Any]:
        """The last check's agreement ({} before any)."""
        result: dict[str, Any] = read_json(self.path).get("agreement", {})
        return result

    def set_agreement(self, rows: Sequence[agreement_lib.VersionAgreement]) -> None:
        """Keeps this check's agreement (replacing the last one)."""
        doc = read_json(self.path)
        at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        doc["agreement"] = {"at": at, "versions": [r.to_dict() for r in rows]}
        write_json(self.path, doc)


def staleness_curve(
    record: QualityRecord,
    store: ModelStore,
    version: int,
    root: str,
    spans: Sequence[int],
    options: IngestOptions,
    splits: Mapping[str, int],
    echo: Callable[[str], None] | None = None,
) -> tuple[list[staleness.Point], int]:
    """The version's points on `spans`, scoring only those not in the record yet.

    Returns:
        (the points, oldest span first; how many were scored now).
    """
    cached = {p.span: p for p in record.points(version)}
    missing = [s for s in spans if s not in cached]
    if missing:
        if echo is not None:
            echo(f"  scoring version {version} on the eval split of span(s) {', '.join(map(str, missing))}")
        scored = staleness.score_spans(
            version, store.path(version), store.lineage(version), root, missing, options, splits, echo
        )
        record.add(scored)
        cached.update((p.span, p) for p in scored)
    return [cached[s] for s in sorted(spans)], len(missing)


def _lineage(store: ModelStore, version: int) -> dict[str, Any]:
    """A version's lineage wherever it is now: served, retired (rolled back) or pending (a canary)."""
    elsewhere = [os.path.join(store.root, folder, str(version)) for folder in (RETIRED_DIR, PENDING_DIR)]
    for folder in (store.path(version), *elsewhere):
        lineage = ModelStore.lineage_at(folder)
        if lineage:
            return lineage
    return {}


def live_agreement(
    log_dir: str, store: ModelStore, tolerance: float, min_images: int
) -> list[agreement_lib.VersionAgreement]:
    """The agreement of every version in the request log, against its lineage."""
    records = list(request_log.read_log(log_dir))
    lineages = {v: _lineage(store, v) for v in {r.version for r in records}}
    return agreement_lib.agreement(records, lineages, tolerance, min_images)
