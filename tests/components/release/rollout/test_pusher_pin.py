"""release.rollout: progressive: the Pusher pins the served version before it publishes, so nothing new is served."""

from __future__ import annotations

import json
import os

import pytest

from detx.components.model_store import ModelStore
from detx.components.pusher import executor
from detx.components.release import approval
from detx.components.release.options import ReleaseOptions
from detx.components.release.traffic import TrafficSplit, read_traffic, write_traffic
from tests.components.pusher.test_pusher import _artifacts


def _push(tmp_path, dest, fake_saved_model, rollout="progressive", approval_mode="none"):
    inputs, outputs = _artifacts(tmp_path, True, fake_saved_model)
    properties = {
        executor.PUSH_DESTINATION: dest,
        "approval": approval_mode,
        "release": json.dumps({"rollout": rollout}),
    }
    executor.Executor().Do(inputs, outputs, properties)
    with open(os.path.join(outputs["pushed_model"][0].uri, executor.PUSH_REPORT_FILENAME)) as f:
        return json.load(f)


def test_a_new_version_waits_for_its_rollout_and_the_first_is_served_at_once(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    first = _push(tmp_path / "a", dest, fake_saved_model)
    assert first["version"] == 1 and "pinned" not in first  # nothing to compare the first version with
    assert read_traffic(dest) is None and store.serving_version() == 1
    assert store.lineage(1)["rollout"] == {"required": True, "state": "not required"}
    second = _push(tmp_path / "b", dest, fake_saved_model)
    assert second["version"] == 2 and second["pinned"] == 1
    assert read_traffic(dest) == TrafficSplit(1) and store.serving_version() == 1
    assert store.complete_versions() == [1, 2]
    assert store.lineage(2)["rollout"] == {"required": True, "state": "waiting"}
    # A pin already there (here: a rollout of 2 in progress) is left as it is.
    write_traffic(dest, TrafficSplit(1, 2, canary_percent=10.0))
    third = _push(tmp_path / "c", dest, fake_saved_model)
    assert third["pinned"] == 1 and read_traffic(dest) == TrafficSplit(1, 2, canary_percent=10.0)


def test_without_progressive_rollout_nothing_is_pinned(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    _push(tmp_path / "a", dest, fake_saved_model, rollout="none")
    _push(tmp_path / "b", dest, fake_saved_model, rollout="none")
    assert read_traffic(dest) is None and ModelStore(dest).serving_version() == 2


def test_approval_comes_first_and_an_approved_version_still_waits_for_its_rollout(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    _push(tmp_path / "a", dest, fake_saved_model, rollout="none")
    pending = _push(tmp_path / "b", dest, fake_saved_model, approval_mode="required")
    assert pending["pending"] and pending["pinned"] == 1 and read_traffic(dest) == TrafficSplit(1)
    approval.approve(store, 2, "ana", "reviewed the card", recheck=lambda *_: {"blessed": True})
    assert store.complete_versions() == [1, 2] and store.serving_version() == 1


def test_an_unknown_rollout_mode_is_refused():
    with pytest.raises(ValueError, match=r"release\.rollout must be one of none, progressive, got 'canary'"):
        ReleaseOptions(rollout="canary")
