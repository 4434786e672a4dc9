"""What a rollout records in its candidate's lineage (`detx_lineage.json`, key "rollout").

The Pusher writes {"required": ..., "state": "waiting" | "not required"} there
(release.rollout); each decision of `detx rollout` replaces it with the whole
record: state ("in progress", "promoted", "rolled back", "aborted"), stage,
the stable version, times, reason, options, where the signals came from and
where the split went, and every decision with its figures. `detx models` and
the model card read lineage; a retired candidate keeps it in `.retired/`.
"""

from __future__ import annotations

import os

import tensorflow as tf

from detx.components.model_store import RETIRED_DIR, ModelStore, write_lineage
from detx.components.release.rollout.state import RolloutState

LINEAGE_KEY = "rollout"


def record_lineage(store: ModelStore, state: RolloutState, source: str, target: str) -> None:
    """Writes the rollout's record into the candidate's lineage, wherever the candidate is (served or retired)."""
    directory = store.path(state.candidate)
    if not tf.io.gfile.isdir(directory):
        # Retired by an earlier attempt at this step (killed before it wrote the state).
        directory = os.path.join(store.root, RETIRED_DIR, str(state.candidate))
        if not tf.io.gfile.isdir(directory):
            return
    record = {
        "state": state.stage if not state.active else "in progress",
        "stage": state.stage,
        "stable": state.stable,
        "started": state.started,
        "finished": state.finished,
        "reason": state.reason,
        "options": state.options,
        "source": source,
        "target": target,
        "decisions": state.decisions,
    }
    write_lineage(directory, {**store.lineage_at(directory), LINEAGE_KEY: record})
