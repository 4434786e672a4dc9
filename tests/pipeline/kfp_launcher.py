"""Runs a compiled KFP v2 spec's steps the way open-source KFP's launcher does, without Kubernetes.

For every task, in dependency order: resolve its parameters (constants, and
run parameters with the spec's defaults), hand it the output artifacts of the
tasks it reads, give each output artifact a URI under the pipeline root, write
that into an ExecutorInput, substitute it for `{{$}}` in the container's
arguments, and run the container's command (here: in this Python, with detx
installed) as a separate process. The step's ExecutorOutput (written to
`outputFile`) supplies its artifacts' metadata to later steps.

Like the open-source backend, it ignores lifecycle hooks (TFX's ExampleGen
driver) and resolver nodes (it has none to run; a spec with one fails).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2


def load_spec(path: str) -> pipeline_spec_pb2.PipelineSpec:
    spec = pipeline_spec_pb2.PipelineSpec()
    with open(path) as f:
        json_format.ParseDict(yaml.safe_load(f), spec)
    return spec


def _order(spec: pipeline_spec_pb2.PipelineSpec) -> list[str]:
    tasks = spec.root.dag.tasks
    done: list[str] = []
    while len(done) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in done and set(t.dependent_tasks) <= set(done))
        if not ready:
            raise ValueError("the DAG has a cycle")
        done.append(ready[0])
    return done


def _schema_title(artifact_spec: Any) -> str:
    if artifact_spec.artifact_type.schema_title:
        return str(artifact_spec.artifact_type.schema_title)
    return str(yaml.safe_load(artifact_spec.artifact_type.instance_schema)["title"])


def run_spec(
    spec: pipeline_spec_pb2.PipelineSpec,
    params: Mapping[str, Any],
    pipeline_root: str,
    run_id: str = "run-1",
    timeout: float = 1200,
) -> dict[str, pipeline_spec_pb2.ExecutorOutput]:
    """Runs every task; returns each task's ExecutorOutput. Raises on the first failed step.

    Raises:
        RuntimeError: a step exited non-zero (its output is in the message).
    """
    values = run_values(spec, params)
    outputs: dict[str, pipeline_spec_pb2.ExecutorOutput] = {}
    executors = spec.deployment_spec["executors"]
    for task_name in _order(spec):
        task = spec.root.dag.tasks[task_name]
        component = spec.components[task.component_ref.name]
        executor = executors[component.executor_label]
        if "container" not in executor:
            raise RuntimeError(f"{task_name}: open-source KFP runs only container executors, got {list(executor)}")
        container = executor["container"]
        executor_input = pipeline_spec_pb2.ExecutorInput()
        for name, value in task_parameter_values(spec, task_name, values).items():
            executor_input.inputs.parameter_values[name].CopyFrom(value)
        for name, artifact in task.inputs.artifacts.items():
            source = artifact.task_output_artifact
            produced = outputs[source.producer_task].artifacts[source.output_artifact_key]
            executor_input.inputs.artifacts[name].CopyFrom(produced)
        task_root = os.path.join(pipeline_root, run_id, task_name)
        for name, artifact_spec in component.output_definitions.artifacts.items():
            runtime = executor_input.outputs.artifacts[name].artifacts.add()
            runtime.name = f"{run_id}/{task_name}/{name}"
            runtime.uri = os.path.join(task_root, name)
            runtime.type.schema_title = _schema_title(artifact_spec)
            # On KFP the root is a bucket, where folders need not exist before
            # objects are written under them; a local root needs the folder.
            os.makedirs(runtime.uri, exist_ok=True)
        executor_input.outputs.output_file = os.path.join(task_root, "executor_output.json")
        serialized = json_format.MessageToJson(executor_input)
        args = [serialized if a == "{{$}}" else a for a in container["args"]]
        command = list(container["command"])
        if command[0] == "python":
            command[0] = sys.executable
        result = subprocess.run(command + args, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"step {task_name} failed ({result.returncode}):\n{result.stderr[-6000:]}")
        output = pipeline_spec_pb2.ExecutorOutput()
        with open(executor_input.outputs.output_file) as f:
            json_format.Parse(f.read(), output)
        for name, artifact_list in executor_input.outputs.artifacts.items():
            # The launcher keeps the artifact it created; the executor adds metadata.
            if name not in output.artifacts:
                output.artifacts[name].CopyFrom(artifact_list)
            for produced in output.artifacts[name].artifacts:
                produced.type.schema_title = artifact_list.artifacts[0].type.schema_title
                produced.name = produced.name or artifact_list.artifacts[0].name
        outputs[task_name] = output
    return outputs


def run_values(spec: pipeline_spec_pb2.PipelineSpec, params: Mapping[str, Any]) -> dict[str, struct_pb2.Value]:
    """Every run parameter's value: the one given at submit time, else the spec's default.

    Raises:
        ValueError: a name the spec does not declare.
    """
    declared = spec.root.input_definitions.parameters
    unknown = set(params) - set(declared)
    if unknown:
        raise ValueError(f"unknown run parameters {sorted(unknown)}")
    values: dict[str, struct_pb2.Value] = {}
    for name, definition in declared.items():
        value = struct_pb2.Value()
        if name in params:
            json_format.ParseDict(params[name], value)
        else:
            value.CopyFrom(definition.default_value)
        values[name] = value
    return values


def task_parameter_values(
    spec: pipeline_spec_pb2.PipelineSpec, task_name: str, values: Mapping[str, struct_pb2.Value]
) -> dict[str, struct_pb2.Value]:
    """A task's parameters as its ExecutorInput carries them: constants, and run parameters from `values`."""
    resolved = {}
    for name, parameter in spec.root.dag.tasks[task_name].inputs.parameters.items():
        if parameter.component_input_parameter:
            resolved[name] = values[parameter.component_input_parameter]
        elif parameter.runtime_value.HasField("constant"):
            resolved[name] = parameter.runtime_value.constant
        else:
            raise RuntimeError(f"{task_name}.{name}: unsupported parameter source {parameter}")
    return resolved


def artifact_dict(output: pipeline_spec_pb2.ExecutorOutput, key: str) -> dict[str, Any]:
    """One output artifact as a dict (uri, metadata)."""
    return json.loads(json_format.MessageToJson(output.artifacts[key].artifacts[0]))
