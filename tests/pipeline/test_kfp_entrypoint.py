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


def _with_executor_logs(spec, task_name):
    """A task's outputs as KFP 2.5+'s driver sends them: the declared ones plus `executor-logs`."""
    executor_input = pipeline_spec_pb2.ExecutorInput()
    component = spec.components[spec.root.dag.tasks[task_name].component_ref.name]
    for name, definition in component.output_definitions.artifacts.items():
        artifact = executor_input.outputs.artifacts[name].artifacts.add(uri=f"gs://b/root/run/{task_name}/{name}")
        artifact.type.CopyFrom(definition.artifact_type)
    logs = executor_input.outputs.artifacts[kfp_launcher.EXECUTOR_LOGS].artifacts.add(uri="gs://b/logs")
    logs.type.schema_title = "system.Artifact"
    return executor_input


def test_every_step_dies_in_tfx_on_the_executor_logs_output_and_parses_once_detx_drops_it(spec):
    for task_name in spec.root.dag.tasks:
        executor_input = _with_executor_logs(spec, task_name)
        with pytest.raises(ImportError, match=r"system\.Artifact"):
            tfx_entrypoint.parse_raw_artifact_dict(executor_input.outputs.artifacts, {})
        assert kfp_entrypoint.drop_kfp_outputs(executor_input) == [kfp_launcher.EXECUTOR_LOGS]
        parsed = tfx_entrypoint.parse_raw_artifact_dict(executor_input.outputs.artifacts, {})
        declared = spec.components[spec.root.dag.tasks[task_name].component_ref.name].output_definitions.artifacts
        assert sorted(parsed) == sorted(declared)


def test_prepare_drops_the_added_output_from_the_invocation_argument(spec):
    executor_input = _with_executor_logs(spec, "Trainer")
    args = argparse.Namespace(
        executor_class_path="x.Executor",
        json_serialized_invocation_args=json.dumps(json_format.MessageToDict(executor_input), separators=(",", ":")),
        json_serialized_inputs_spec_args=None,
    )
    kfp_entrypoint.prepare(args)
    assert sorted(json.loads(args.json_serialized_invocation_args)["outputs"]["artifacts"]) == ["model", "model_run"]


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "250000 100000\n"}, 3),  # cgroup v2, limit 2.5 CPUs
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),  # cgroup v1
    ],
)
def test_beam_workers_are_the_pods_cpu_limit_not_the_nodes_cores(tmp_path, monkeypatch, files, cpus):
    monkeypatch.setattr(kfp_entrypoint.os, "sched_getaffinity", lambda pid: set(range(96)))  # a 96-core node
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert kfp_entrypoint.pod_cpus(str(tmp_path)) == cpus
    args = ["--runner=DirectRunner", "--direct_num_workers=0", "--setup_file=/x/setup.py"]
    assert kfp_entrypoint.bound_beam_workers(args, cpus) == [
        "--runner=DirectRunner",
        f"--direct_num_workers={cpus}",
        "--setup_file=/x/setup.py",
    ]


def test_without_a_cpu_limit_beam_gets_the_cores_the_pod_is_scheduled_on(tmp_path, monkeypatch):
    monkeypatch.setattr(kfp_entrypoint.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert kfp_entrypoint.pod_cpus(str(tmp_path)) == 3
    assert kfp_entrypoint.pod_cpus(str(tmp_path / "missing")) == 3
