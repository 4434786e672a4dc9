"""Directory markers on a gs:// root: what TensorFlow writes, what KFP's launcher chokes on, what detx removes.

A real GCS JSON API server (fake-gcs-server, tests/pipeline/gcs_emulator.py) and
TensorFlow's real GCS filesystem plugin, in a separate process as a step is.
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


_PUSH = """
import json, sys
from detx.components.model_store import ModelStore
info = ModelStore(sys.argv[2]).push(sys.argv[1], {"model": {"uri": sys.argv[1]}})
print(json.dumps({"version": info.version, "path": info.path}))
"""


@pytest.mark.slow
def test_the_pusher_writes_a_complete_servable_version_to_the_object_store_saved_model_last(gcs, tmp_path):
    import json

    import numpy as np
    import tensorflow as tf

    from tests.serving.conftest import export_tiny

    model = export_tiny(str(tmp_path / "model"))
    destination = gcs.uri("models/detx")
    env = {**os.environ, **gcs.step_env}
    # The Pusher's object-store path (ModelStore._push_ordered), in a process of its own as on Kubeflow.
    done = subprocess.run(
        [sys.executable, "-c", _PUSH, model, destination], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["version"] == 1
    local_files = sorted(os.path.relpath(os.path.join(d, f), model) for d, _, files in os.walk(model) for f in files)
    pushed = gcs.objects("models/detx/1/")
    files = sorted(n.removeprefix("models/detx/1/") for n in pushed if not n.endswith("/"))
    assert files == sorted([*local_files, "detx_lineage.json"])
    # Complete means saved_model.pb exists, so it must be written last: the newest generation.
    generations = gcs.generations("models/detx/1/")
    assert max(generations, key=generations.get) == "models/detx/1/saved_model.pb"

    # TF Serving reads the bucket itself (its GCS filesystem takes `<dir>/` markers for folders).
    served = tf.saved_model.load(gcs.download(destination + "/1", str(tmp_path / "mnt"), skip_markers=True))
    out = served.signatures["serving_default"](tf.zeros([1, 64, 64, 3], tf.uint8))
    assert out["detection_boxes"].shape[0] == 1 and np.isfinite(out["detection_scores"].numpy()).all()


@pytest.mark.slow
@pytest.mark.e2e
def test_data_steps_run_on_a_gs_root_and_leave_inputs_the_launcher_can_download(gcs, tmp_path):
    from detx.components.data.synth import SynthConfig, write_dataset
    from tests.pipeline import kfp_launcher
    from tests.pipeline.test_kfp_steps_e2e import SMALL, compiled_spec

    data_root = str(tmp_path / "data")
    write_dataset(f"{data_root}/span-1", SynthConfig(num_images=8, seed=4, **SMALL), "coco")
    spec = compiled_spec()
    params = {"data_root": data_root, "data_span": 0, "push_destination": gcs.uri("models/detx")}
    downloaded = []

    def download(uri):  # the launcher mounts every input before the step starts
        downloaded.append(uri)
        gcs.download(uri, str(tmp_path / "mnt"))

    root = gcs.uri("root")
    # ExampleGen and SchemaGen both makedirs their outputs; SchemaGen's input is ExampleGen's output.
    outputs = kfp_launcher.run_spec(spec, params, root, env=gcs.step_env, download=download, until="DetectionSchemaGen")

    assert set(outputs) == {"DetectionExampleGen", "DetectionSchemaGen"}
    examples = kfp_launcher.artifact_dict(outputs["DetectionExampleGen"], "examples")
    assert examples["uri"] == f"{root}/run-1/DetectionExampleGen/examples" and examples["metadata"]["span"] == 1.0
    assert downloaded == [f"{root}/run-1/DetectionExampleGen/examples"]
    objects = gcs.objects("root/run-1/")
    assert any(n.startswith("root/run-1/DetectionExampleGen/examples/Split-train/") for n in objects)
    # detx's entrypoint removed every marker TensorFlow left under the steps' outputs.
    assert not [n for n in objects if n.endswith("/") and n.count("/") > 3]
