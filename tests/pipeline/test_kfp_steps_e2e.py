"""The compiled KFP spec's eight steps run as open-source KFP would run them: one process each.

tests/pipeline/kfp_launcher.py plays KFP's launcher (ExecutorInput in, TFX's
v2 container entrypoint, ExecutorOutput out, no driver hooks). What this
shows: with only the run form's parameters, the spec's steps read the data
(spans 2-3 of a span root: the window ends at `data_span`, not where TFX's driver would say), train, evaluate
against production found in the push destination, and push version 1.
"""

import json
import os

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from detx.components.data.synth import SynthConfig, write_dataset
from detx.pipeline import kfp_compile
from detx.pipeline.config import with_setup_file
from detx.pipeline.config_file import build_config
from tests.pipeline import kfp_launcher

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_compiled_steps_push_version_1_with_the_span_from_the_run_form(tmp_path):
    data_root = str(tmp_path / "data")  # a span root; the run form's data_span names the newest span to read
    small = {"width": 320, "height": 240, "min_size": 40}
    write_dataset(f"{data_root}/span-2", SynthConfig(num_images=16, seed=4, **small), "coco")
    write_dataset(f"{data_root}/span-3", SynthConfig(num_images=40, seed=5, **small), "coco")
    write_dataset(f"{data_root}/span-4", SynthConfig(num_images=8, seed=6, **small), "coco")  # newer: not read
    config = build_config(
        {
            "name": "detx-kfp-steps",
            "data": {"path": "gs://placeholder/data", "span_window": 2},
            "trainer": {"preset": "tiny", "batch_size": 4},
            "train_steps": 1000,
            "push_destination": "gs://placeholder/models/detx",
            # Threads in this process's environment instead of the pod's processes (see BENCHMARKS.md).
            "beam_args": with_setup_file(["--runner=FnApiRunner", "--direct_running_mode=multi_threading"]),
            "kubeflow": {"image": "detx:test", "pipeline_root": "gs://placeholder/root"},
        }
    )
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(kfp_compile.compile_spec(config), spec)
    push_destination = str(tmp_path / "models" / "detx")
    params = {
        "data_root": data_root,
        "data_span": 3,
        "train_steps": 3,
        "push_destination": push_destination,
        "min_map_50": 0.0,
    }
    # The run's pipeline root (set when a run is created) overrides the spec's default.
    pipeline_root = str(tmp_path / "root")
    outputs = kfp_launcher.run_spec(spec, params, pipeline_root)

    assert set(outputs) == set(spec.root.dag.tasks)
    examples = kfp_launcher.artifact_dict(outputs["DetectionExampleGen"], "examples")
    assert examples["metadata"]["span"] == 3.0
    assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval"]
    assert examples["uri"].startswith(pipeline_root)
    blessing = kfp_launcher.artifact_dict(outputs["DetectionEvaluator"], "blessing")
    assert blessing["metadata"]["blessed"] == 1.0
    with open(os.path.join(blessing["uri"], "detx_evaluation.json")) as f:
        evaluation = json.load(f)
    assert evaluation["baseline_version"] is None  # nothing in production yet: first push
    pushed = kfp_launcher.artifact_dict(outputs["DetectionPusher"], "pushed_model")
    assert pushed["metadata"]["pushed"] == 1.0 and pushed["metadata"]["pushed_version"] == "1"
    assert os.path.exists(os.path.join(push_destination, "1", "saved_model.pb"))
    with open(os.path.join(push_destination, "1", "detx_lineage.json")) as f:
        lineage = json.load(f)
    assert lineage["data"]["span"] == 3 and lineage["data"]["source"] == data_root
    assert lineage["data"]["spans"] == [2, 3] and lineage["data"]["num_examples"] == 56
    assert lineage["model"]["uri"] == kfp_launcher.artifact_dict(outputs["Trainer"], "model")["uri"]
