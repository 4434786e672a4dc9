"""The traffic split file: what it accepts, what it refuses, and production while it is pinned."""

import json
import os

import pytest

from detx.components.model_store import ModelStore
from detx.components.release.traffic import (
    TRAFFIC_FILE,
    TrafficError,
    TrafficSplit,
    read_traffic,
    traffic_path,
    write_traffic,
)


def test_a_split_round_trips_and_removing_it_serves_the_newest_again(tmp_path, fake_saved_model):
    root = str(tmp_path / "detx")
    for version in (1, 2, 3):
        fake_saved_model(os.path.join(root, str(version)), files=1)
    store = ModelStore(root)
    assert read_traffic(root) is None and store.serving_version() == 3

    split = TrafficSplit(stable=2, candidate=3, shadow_percent=10, canary_percent=0)
    write_traffic(root, split)
    assert read_traffic(root) == split
    assert json.loads((tmp_path / "detx" / TRAFFIC_FILE).read_text())["candidate"] == 3
    assert store.serving_version() == 2  # pinned: version 3 takes no traffic until promoted
    assert [n for n in os.listdir(root) if n.endswith(".tmp")] == []  # nothing left beside it
    assert split.versions == (2, 3) and split.labels == {"stable": 2, "canary": 3}

    write_traffic(root, None)
    assert not os.path.exists(traffic_path(root)) and store.serving_version() == 3


def test_a_pin_on_a_version_that_is_not_there_falls_back_to_the_newest(tmp_path, fake_saved_model):
    root = str(tmp_path / "detx")
    fake_saved_model(os.path.join(root, "1"), files=1)
    write_traffic(root, TrafficSplit(stable=7))
    assert ModelStore(root).serving_version() == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stable": 0}, "the stable version must be a version number"),
        ({"stable": 1, "candidate": 1}, "the candidate is the stable version (1)"),
        ({"stable": 1, "canary_percent": 10}, "a shadow or canary share needs a candidate version"),
        ({"stable": 1, "candidate": 2, "shadow_percent": 150}, "shadow_percent must be between 0 and 100"),
    ],
)
def test_impossible_splits_are_refused_with_the_reason(fields, message):
    with pytest.raises(TrafficError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrafficSplit(**fields)


def test_a_broken_file_names_itself_and_the_fix(tmp_path):
    root = tmp_path / "detx"
    root.mkdir()
    (root / TRAFFIC_FILE).write_text("{not json")
    with pytest.raises(TrafficError, match=r"is not JSON .*fix it or delete it"):
        read_traffic(str(root))
    (root / TRAFFIC_FILE).write_text(json.dumps({"stable": 1, "weights": [1]}))
    with pytest.raises(TrafficError, match=r"unknown fields \['weights'\]"):
        read_traffic(str(root))
    (root / TRAFFIC_FILE).write_text(json.dumps({"candidate": 2}))
    with pytest.raises(TrafficError, match="at least a 'stable' version"):
        read_traffic(str(root))


def test_a_rollback_moves_a_pinned_split_to_its_target_before_retiring(tmp_path, fake_saved_model):
    root = str(tmp_path / "detx")
    for version in (1, 2, 3):
        fake_saved_model(os.path.join(root, str(version)), files=1)
    write_traffic(root, TrafficSplit(stable=2, candidate=3, shadow_percent=10))
    store = ModelStore(root)

    result = store.rollback()  # --previous: the version below the served (pinned) one, not below the newest

    assert (result.previous, result.serving, result.retired) == (2, 1, [3, 2])
    assert read_traffic(root) == TrafficSplit(stable=1)  # a later push still waits for a rollout
    assert store.serving_version() == 1 and store.complete_versions() == [1]
