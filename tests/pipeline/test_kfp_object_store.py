"""Directory markers on a gs:// root: what TensorFlow writes, what KFP's launcher chokes on, what detx removes.

A real GCS server (fake-gcs-server, tests/pipeline/gcs_emulator.py) and TensorFlow's
own GCS filesystem, in a separate process as a step is. The whole DAG on a gs://
root, the Pusher's bucket path included, runs in test_kfp_steps_e2e.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from detx.pipeline import kfp_entrypoint
from tests.pipeline.gcs_emulator import DirectoryMarker, GcsEmulator

_STEP = """
import sys, tensorflow as tf
root = sys.argv[1]
tf.io.gfile.makedirs(root + "/Split-train")  # as ExampleGen and SchemaGen do on their output URIs
with tf.io.gfile.GFile(root + "/Split-train/data.gz", "wb") as f:
    f.write(b"records")
with tf.io.gfile.GFile(root + "/schema.pbtxt", "w") as f:
    f.write("feature {}")
"""


@pytest.fixture
def gcs():
    with GcsEmulator() as server:
        yield server


def test_makedirs_leaves_markers_the_launcher_cannot_download_and_detx_removes_only_those(gcs, tmp_path, monkeypatch):
    output = gcs.uri("root/run-1/DetectionSchemaGen/schema")
    env = {**os.environ, **gcs.step_env}
    subprocess.run([sys.executable, "-c", _STEP, output], env=env, check=True, capture_output=True, timeout=300)
    objects = gcs.objects("root/")
    markers = sorted(n for n in objects if n.endswith("/"))
    assert "root/run-1/DetectionSchemaGen/schema/Split-train/" in markers and all(objects[m] == 0 for m in markers)
    with pytest.raises(DirectoryMarker, match="/: not a directory"):
        gcs.download(output, str(tmp_path / "mnt"))

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "detx-test")
    removed = kfp_entrypoint.remove_markers([output])
    assert sorted(removed) == [
        f"gs://{gcs.bucket}/{m}" for m in markers if m.startswith("root/run-1/DetectionSchemaGen/schema")
    ]
    assert sorted(gcs.objects("root/run-1/DetectionSchemaGen/schema")) == [
        "root/run-1/DetectionSchemaGen/schema/Split-train/data.gz",
        "root/run-1/DetectionSchemaGen/schema/schema.pbtxt",
    ]
    local = gcs.download(output, str(tmp_path / "mnt"))
    with open(os.path.join(local, "Split-train", "data.gz"), "rb") as f:
        assert f.read() == b"records"


def test_local_outputs_have_no_markers_to_remove(tmp_path):
    (tmp_path / "a").mkdir()
    assert kfp_entrypoint.remove_markers([str(tmp_path / "a")]) == []
