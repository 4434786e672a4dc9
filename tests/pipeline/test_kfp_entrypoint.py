"""detx's step entrypoint survives the input artifacts open-source KFP's driver really sends.

The driver rebuilds inputs from ML Metadata with an empty `type.instanceSchema`
(tests/pipeline/kfp_launcher.py cites the Go code); TFX 1.16's entrypoint alone
dies on that before the executor runs (tensorflow/tfx#7768).
"""

from __future__ import annotations

import argparse
import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_entrypoint

from detx.pipeline import kfp_entrypoint
from tests.pipeline import kfp_launcher

GOLDEN = "kfp_manifests/detx_pipeline.yaml"


@pytest.fixture(scope="module")
def spec():
    from pathlib import Path

    return kfp_launcher.load_spec(str(Path(__file__).resolve().parents[2] / GOLDEN))


def _driver_input(spec, task_name, mlmd):
    """The ExecutorInput the real driver builds for a task whose producers ran (one artifact each)."""
    task = spec.root.dag.tasks[task_name]
    executor_input = pipeline_spec_pb2.ExecutorInput()
    for name, artifact in task.inputs.artifacts.items():
        source = artifact.task_output_artifact
        metadata = pipeline_spec_pb2.RuntimeArtifact().metadata
        metadata.update({"span": 3, "split_names": '["train", "eval"]'})
        artifact_id = mlmd.record(f"gs://b/root/run/{source.producer_task}/{name}", "t", metadata, name)
        executor_input.inputs.artifacts[name].artifacts.append(mlmd.runtime_artifact(artifact_id))
    return executor_input


def _inputs_spec(spec, task_name):
    container = json_format.MessageToDict(spec.deployment_spec)["executors"][
        spec.components[spec.root.dag.tasks[task_name].component_ref.name].executor_label
    ]["container"]
    inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
    json_format.Parse(container["args"][container["args"].index("--json_serialized_inputs_spec_args") + 1], inputs_spec)
    return inputs_spec


def _steps_with_inputs(spec):
    return sorted(n for n, t in spec.root.dag.tasks.items() if t.inputs.artifacts)


def test_every_step_with_inputs_fails_in_tfx_alone_and_parses_after_detx_fills_the_types(spec):
    steps = _steps_with_inputs(spec)
    assert len(steps) == 10  # every step but ExampleGen reads an upstream artifact (the Tuner included)
    read_types = set()
    for task_name in steps:
        executor_input = _driver_input(spec, task_name, kfp_launcher.Mlmd())
        # TFX 1.16 alone: yaml.safe_load("") is None -> AttributeError, before any executor code.
        with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
            tfx_entrypoint.parse_raw_artifact_dict(executor_input.inputs.artifacts, {})
        filled = kfp_entrypoint.fill_input_types(executor_input, _inputs_spec(spec, task_name))
        assert sorted(filled) == sorted(executor_input.inputs.artifacts)
        parsed = tfx_entrypoint.parse_raw_artifact_dict(executor_input.inputs.artifacts, {})
        for name, artifacts in parsed.items():
            (artifact,) = artifacts
            assert artifact.uri.endswith(f"/{name}")
            read_types.add(artifact.TYPE_NAME)
    assert read_types == {
        "Examples",
        "ExampleStatistics",
        "Schema",
        "ExampleAnomalies",
        "Model",
        "ModelBlessing",
        "InfraBlessing",
        "HyperParameters",  # the Trainer reads the Tuner's best hyperparameters
        "detx.TFLiteModels",  # the Pusher reads the TFLite step's custom type, rebuilt from detx/__init__.py
    }
    # No step reads the DataGate's own type (detx.DataGateResult): the Trainer waits on the gate's task.
    assert "DataGate" in spec.root.dag.tasks["Trainer"].dependent_tasks


def test_types_that_arrive_are_left_alone(spec):
    executor_input = _driver_input(spec, "Trainer", kfp_launcher.Mlmd())
    for artifacts in executor_input.inputs.artifacts.values():
        artifacts.artifacts[0].type.schema_title = "system.Artifact"  # as Vertex AI sends a type
    assert kfp_entrypoint.fill_input_types(executor_input, _inputs_spec(spec, "Trainer")) == []
    assert {a.artifacts[0].type.schema_title for a in executor_input.inputs.artifacts.values()} == {"system.Artifact"}


def test_an_untyped_input_the_spec_does_not_declare_is_an_error_naming_it(spec):
    executor_input = _driver_input(spec, "Trainer", kfp_launcher.Mlmd())
    with pytest.raises(ValueError, match="input artifact 'examples' arrived without a type"):
        kfp_entrypoint.fill_input_types(executor_input, pipeline_spec_pb2.ComponentInputsSpec())


def test_prepare_rewrites_only_the_invocation_argument(spec):
    executor_input = _driver_input(spec, "DataGate", kfp_launcher.Mlmd())
    inputs_spec = json_format.MessageToJson(_inputs_spec(spec, "DataGate"))
    args = argparse.Namespace(
        executor_class_path="x.Executor",
        json_serialized_invocation_args=json.dumps(json_format.MessageToDict(executor_input), separators=(",", ":")),
        json_serialized_inputs_spec_args=inputs_spec,
    )
    kfp_entrypoint.prepare(args)
    mended = json.loads(args.json_serialized_invocation_args)
    titles = {
        name: mended["inputs"]["artifacts"][name]["artifacts"][0]["type"]["instanceSchema"].split("\n")[0]
        for name in mended["inputs"]["artifacts"]
    }
    assert titles == {
        "anomalies": "title: tfx.ExampleAnomalies",
        "examples": "title: tfx.Examples",
        "schema": "title: tfx.Schema",
    }
    assert args.json_serialized_inputs_spec_args == inputs_spec
