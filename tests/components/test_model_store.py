"""The push destination: versions appear whole or not at all, numbers only grow, rollbacks retire newer versions."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from detx.components.model_store import LINEAGE_FILE, SAVED_MODEL_FILE, ModelStore, ModelStoreError, copy_tree


@pytest.fixture
def model(tmp_path, fake_saved_model):
    return fake_saved_model(tmp_path / "model")


def test_push_numbers_versions_and_records_lineage(tmp_path, model):
    store = ModelStore(str(tmp_path / "dest"))
    assert store.serving_version() is None and store.next_version() == 1
    v1 = store.push(model, {"metrics": {"map_50": 0.7}})
    v2 = store.push(model, {"metrics": {"map_50": 0.8}})
    assert (v1.version, v2.version) == (1, 2)
    assert store.serving_version() == 2
    assert sorted(os.listdir(tmp_path / "dest")) == ["1", "2"]  # no staging directory left behind
    lineage = store.lineage(2)
    assert lineage["metrics"] == {"map_50": 0.8} and lineage["version"] == 2 and lineage["pushed_at"]
    assert os.path.exists(os.path.join(v2.path, "variables", "variables.index"))


def test_push_refuses_a_directory_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelStoreError, match=r"no saved_model\.pb"):
        ModelStore(str(tmp_path / "dest")).push(str(tmp_path / "empty"), {})
    assert not os.path.exists(tmp_path / "dest" / "1")


def test_incomplete_versions_are_never_served_but_their_numbers_are_not_reused(tmp_path, model):
    store = ModelStore(str(tmp_path / "dest"))
    store.push(model, {})
    os.makedirs(tmp_path / "dest" / "2" / "variables")  # e.g. a copy to an object store cut short
    assert [v.complete for v in store.versions()] == [True, False]
    assert store.serving_version() == 1 and store.complete_versions() == [1]
    assert store.push(model, {}).version == 3


def test_rollback_retires_newer_versions_and_numbers_keep_growing(tmp_path, model):
    store = ModelStore(str(tmp_path / "dest"))
    for _ in range(3):
        store.push(model, {})
    result = store.rollback()  # --previous
    assert (result.previous, result.serving, result.retired) == (3, 2, [3])
    assert store.serving_version() == 2 and store.retired_versions() == [3]
    result = store.rollback(to=1)
    assert result.serving == 1 and result.retired == [2]
    assert store.push(model, {}).version == 4  # 2 and 3 are retired, never reissued
    with pytest.raises(ModelStoreError, match="version 7 is not a complete version"):
        store.rollback(to=7)
    single = ModelStore(str(tmp_path / "single"))
    single.push(model, {})
    with pytest.raises(ModelStoreError, match="--previous needs one below"):
        single.rollback()


def test_ordered_copy_writes_saved_model_pb_last(tmp_path, model):
    order = []
    copy_tree(model, str(tmp_path / "copy"), on_file=order.append)
    assert order[-1] == SAVED_MODEL_FILE and len(order) == 23


_KILLED_PUSH = """
import os, sys, time
from detx.components import model_store
store = model_store.ModelStore(sys.argv[1])
if sys.argv[4] == "ordered":  # what a push to gs:// does: straight into the numbered directory
    push = store._push_ordered
else:
    push = store._push_local
copied = []
def on_file(rel):
    copied.append(rel)
    if len(copied) == 5:
        open(sys.argv[3], "w").close()  # tell the test we are midway
        time.sleep(120)
push(sys.argv[2], {"note": "killed"}, on_file, {"detx_train_stats.pb": b"stats"})
"""


@pytest.mark.parametrize("mode", ["local", "ordered"])
def test_a_push_killed_midway_leaves_the_served_version_unchanged(tmp_path, model, mode):
    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    store.push(model, {"note": "good"})
    marker = tmp_path / "midway"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PUSH, dest, model, str(marker), mode],
        env={**os.environ, "PYTHONPATH": repo, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the pushing process ended before it was killed"
            assert time.monotonic() < deadline, "the push never got midway"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The served version is still 1, and nothing a loader would pick up appeared.
    assert store.serving_version() == 1 and store.complete_versions() == [1]
    assert store.lineage(1)["note"] == "good"
    if mode == "local":
        leftovers = [n for n in os.listdir(dest) if n.startswith(".staging-")]
        assert leftovers and store.versions()[-1].version == 1  # only a non-numeric staging directory
    else:
        assert [(v.version, v.complete) for v in store.versions()] == [(1, True), (2, False)]
    # The next push cleans up after the killed one (same host, dead pid) and takes a fresh number.
    nxt = store.push(model, {"note": "after"})
    assert nxt.version == 2 if mode == "local" else nxt.version == 3
    assert not [n for n in os.listdir(dest) if n.startswith(".staging-")]
    with open(os.path.join(nxt.path, LINEAGE_FILE)) as f:
        assert json.load(f)["note"] == "after"
