"""Re-checking a pending candidate when production changed after it was evaluated.

The Evaluator blessed the candidate against the version served then. If
another version is served by the time someone approves (a rollback, an
approval of another candidate, a push with approval off), that verdict is
stale: the candidate and the version served now are scored on the
candidate's own eval split with the same COCO metric, and the thresholds
recorded at evaluation are applied again.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import tensorflow as tf

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.evaluator.eval_config import SIGNATURE
from detx.components.model_store import ModelStore


def _map_50(model_dir: str, examples: list[bytes], num_classes: int) -> float:
    signature = tf.saved_model.load(model_dir).signatures[SIGNATURE]
    return float(evaluate(lambda batch: signature(examples=batch), examples, num_classes).map_50)


def recheck(store: ModelStore, version: int, lineage: dict[str, Any], serving: int) -> dict[str, Any]:
    """Scores pending `version` and served `serving` on the candidate's eval split; applies its thresholds.

    Returns:
        {"against": serving, "blessed": bool, "reasons": [...], "candidate_map_50", "production_map_50", "at"}.
    """
    record: dict[str, Any] = {"against": serving, "at": datetime.datetime.now(datetime.UTC).isoformat()}
    examples_uri = lineage.get("data", {}).get("examples_uri", "")
    pattern = os.path.join(examples_uri, "Split-eval", "*")
    if not examples_uri or not tf.io.gfile.glob(pattern):
        reason = (
            f"production changed to version {serving} since the candidate was evaluated, and its eval split "
            f"({pattern}) is gone, so it cannot be re-checked; re-run the pipeline for a new candidate"
        )
        return {**record, "blessed": False, "reasons": [reason]}
    examples = read_examples(pattern)
    num_classes = LabelMap.read(os.path.join(examples_uri, LABEL_MAP_FILENAME)).num_classes
    candidate = _map_50(store.pending_path(version), examples, num_classes)
    production = _map_50(store.path(serving), examples, num_classes)
    thresholds = lineage.get("thresholds", {})
    floor, drop = float(thresholds.get("min_map_50", 0.0)), float(thresholds.get("max_map_50_drop", 0.0))
    reasons = []
    if candidate < floor:
        reasons.append(f"mAP@0.5 {candidate:.3f} is below min_map_50 {floor:.2f}")
    if candidate < production - drop:
        reasons.append(
            f"mAP@0.5 {candidate:.3f} is more than {drop:.2f} below version {serving}'s {production:.3f} "
            "on the same eval split"
        )
    return {
        **record,
        "blessed": not reasons,
        "reasons": reasons,
        "candidate_map_50": candidate,
        "production_map_50": production,
        "examples": len(examples),
    }
