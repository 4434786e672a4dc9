"""Runs a compiled KFP v2 spec as open-source KFP's driver and launcher do, field by field, without Kubernetes.

Rewritten from kubeflow/pipelines `backend/src/v2` (tags 2.0.3, 2.2.0, 2.5.0 and a 2026
snapshot; shared/reference/kfp_oss_v2.md): what a step's container receives, what the
launcher does with what it writes, and when a step is answered from the cache.

Per task, in dependency order:

1. **Driver** (`driver/driver.go`, `Container`): parameters are the task's constants and
   run parameters, with the component's declared defaults added. Input artifacts are
   rebuilt from ML Metadata (`metadata/client.go`, `GetOutputArtifactsByExecutionId`,
   then `OutputArtifact.ToRuntimeArtifact`): `name` is the MLMD id as text,
   `type.instanceSchema` is "" ("TODO(Bobgy): figure out how to get schema"), `metadata`
   is the artifact's MLMD custom properties (`metadata/converter.go`, `toRuntimeArtifact`).
   The cache key (`cacheutils`, `GenerateCacheKey`) is the input artifact ids, the
   parameter values, the output specs, the image, command and arguments; a task whose
   caching is on and whose key was seen reuses that execution's outputs and does not run.
   From 2.5, with the API server's `PUBLISH_LOGS` on (its default manifests), the driver
   adds an output `executor-logs` typed `schemaTitle: system.Artifact` to every container
   task (`driver.go`, lines 2024-2038 at 2.5.0; `publish_logs` below).
2. **Launcher** (`component/launcher_v2.go`): output artifacts get the declared
   `artifactType` verbatim, no `name` (empty up to KFP 2.14), a URI under the run's
   pipeline root; `outputs.outputFile` is `/tmp/kfp_outputs/output_metadata.json`;
   `{{$}}` is replaced as a substring in the command and every argument by the
   ExecutorInput as compact JSON. Inputs on an object store are first downloaded to a
   local mount (`downloadArtifacts`; `download` below); the step's own code reads the
   remote URI. After the step, the executor's URI and metadata are merged into the
   launcher's artifact and recorded in MLMD: metadata values go through
   `structValueToMLMDValue` (numbers become doubles, booleans integers, lists and
   structs are wrapped in {"list": ...} / {"struct": ...}) and `display_name` is added.

Not emulated: Kubernetes itself (pods, volumes, secrets), Argo, retries, the KFP UI.

A step is a fresh process with the container's command, arguments and environment; for
detx's entrypoint it is forked from a pre-imported interpreter (tests/pipeline/step_zygote.py,
which says why; DETX_TEST_STEP_SUBPROCESS=1 starts a new interpreter per step instead).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from tests.pipeline import step_zygote

# The launcher's executor output file (launcher_v2.go; a path under the pipeline root from KFP 2.15).
OUTPUT_FILE = "/tmp/kfp_outputs/output_metadata.json"
# The output the driver adds to every task when the API server publishes logs (KFP 2.5+).
EXECUTOR_LOGS = "executor-logs"
# Pods have their own /tmp; processes here share one, so steps of concurrent tests take turns.
_OUTPUT_LOCK = "/tmp/kfp_outputs.lock"


def load_spec(path: str) -> pipeline_spec_pb2.PipelineSpec:
    spec = pipeline_spec_pb2.PipelineSpec()
    with open(path) as f:
        json_format.ParseDict(next(yaml.safe_load_all(f)), spec)
    return spec


@dataclasses.dataclass
class Mlmd:
    """The ML Metadata the driver and the launcher share across runs (artifacts and cached executions)."""

    artifacts: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    cache: dict[str, dict[str, list[int]]] = dataclasses.field(default_factory=dict)
    executions: int = 0

    def record(self, uri: str, title: str, metadata: struct_pb2.Struct, display_name: str) -> int:
        artifact_id = len(self.artifacts) + 1
        properties = {k: _to_mlmd(v) for k, v in metadata.fields.items()}
        properties["display_name"] = ("string_value", display_name)
        self.artifacts[artifact_id] = {"uri": uri, "type": title, "custom_properties": properties}
        return artifact_id

    def runtime_artifact(self, artifact_id: int) -> pipeline_spec_pb2.RuntimeArtifact:
        """An artifact as the driver hands it to a reader: MLMD id as name, empty instance schema."""
        stored = self.artifacts[artifact_id]
        artifact = pipeline_spec_pb2.RuntimeArtifact(name=str(artifact_id), uri=stored["uri"])
        artifact.type.instance_schema = ""
        for key, (kind, value) in stored["custom_properties"].items():
            artifact.metadata.fields[key].CopyFrom(_to_runtime(kind, value))
        return artifact


def _to_mlmd(value: struct_pb2.Value) -> tuple[str, Any]:
    """converter.go `structValueToMLMDValue`."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return ("string_value", value.string_value)
    if kind == "number_value":
        return ("double_value", value.number_value)
    if kind == "bool_value":
        return ("int_value", int(value.bool_value))
    if kind in ("list_value", "struct_value"):
        wrapped = struct_pb2.Struct()
        wrapped.fields["list" if kind == "list_value" else "struct"].CopyFrom(value)
        return ("struct_value", wrapped)
    raise ValueError(f"unknown/unsupported value type {kind}")  # null: "TODO: support null"


def _to_runtime(kind: str, value: Any) -> struct_pb2.Value:
    """converter.go `toRuntimeArtifact`: string, double, int (as a number), struct."""
    out = struct_pb2.Value()
    if kind == "string_value":
        out.string_value = value
    elif kind in ("double_value", "int_value"):
        out.number_value = float(value)
    else:
        out.struct_value.CopyFrom(value)
    return out


def _order(spec: pipeline_spec_pb2.PipelineSpec) -> list[str]:
    tasks = spec.root.dag.tasks
    done: list[str] = []
    while len(done) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in done and set(t.dependent_tasks) <= set(done))
        if not ready:
            raise ValueError("the DAG has a cycle")
        done.append(ready[0])
    return done


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
    """A task's parameters as the driver resolves them: constants, run parameters, then component defaults."""
    task = spec.root.dag.tasks[task_name]
    resolved = {}
    for name, parameter in task.inputs.parameters.items():
        if parameter.component_input_parameter:
            resolved[name] = values[parameter.component_input_parameter]
        elif parameter.runtime_value.HasField("constant"):
            resolved[name] = parameter.runtime_value.constant
        else:
            raise RuntimeError(f"{task_name}.{name}: unsupported parameter source {parameter}")
    component = spec.components[task.component_ref.name]
    for name, definition in component.input_definitions.parameters.items():
        if name not in resolved and definition.HasField("default_value"):
            resolved[name] = definition.default_value
    return resolved


def _cache_key(executor_input: pipeline_spec_pb2.ExecutorInput, component: Any, container: Mapping[str, Any]) -> str:
    key = {
        "inputArtifactNames": {
            k: [a.name for a in v.artifacts] for k, v in sorted(executor_input.inputs.artifacts.items())
        },
        "inputParameterValues": {
            k: json_format.MessageToDict(v) for k, v in sorted(executor_input.inputs.parameter_values.items())
        },
        "outputArtifactsSpec": json_format.MessageToDict(component.output_definitions),
        "containerSpec": {"image": container["image"], "cmdArgs": [*container["command"], *container["args"]]},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _title(artifact_type: pipeline_spec_pb2.ArtifactTypeSchema) -> str:
    if artifact_type.schema_title:
        return str(artifact_type.schema_title)
    return str(yaml.safe_load(artifact_type.instance_schema)["title"])


def run_spec(
    spec: pipeline_spec_pb2.PipelineSpec,
    params: Mapping[str, Any],
    pipeline_root: str,
    run_id: str = "run-1",
    mlmd: Mlmd | None = None,
    download: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
    until: str | None = None,
    timeout: float = 1200,
    publish_logs: bool = True,
) -> dict[str, dict[str, pipeline_spec_pb2.RuntimeArtifact]]:
    """Runs every task; returns each task's output artifacts as the next driver would hand them on.

    Args:
        spec: the compiled PipelineSpec.
        params: the run parameters given at submit time.
        pipeline_root: the run's root (its `pipeline_root`, which detx submit sets).
        run_id: names the run's folder under the root.
        mlmd: the metadata store of earlier runs (for the cache); a new one if None.
        download: the launcher's download of an input artifact URI to its local mount
            (object-store roots); None for a local root.
        env: variables added to each step's environment (e.g. the object store's endpoint).
        until: the last task to run (None: all).
        publish_logs: the API server's PUBLISH_LOGS (KFP 2.5+): every task gets KFP's
            `executor-logs` output.
        timeout: seconds one step may take.

    Raises:
        RuntimeError: a step exited non-zero (its output is in the message).
    """
    mlmd = mlmd if mlmd is not None else Mlmd()
    values = run_values(spec, params)
    produced: dict[str, dict[str, list[int]]] = {}
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
            for artifact_id in produced[source.producer_task][source.output_artifact_key]:
                executor_input.inputs.artifacts[name].artifacts.append(mlmd.runtime_artifact(artifact_id))
        key = _cache_key(executor_input, component, container)
        if task.caching_options.enable_cache and key in mlmd.cache:
            produced[task_name] = mlmd.cache[key]
            continue
        for name, artifact_spec in component.output_definitions.artifacts.items():
            runtime = executor_input.outputs.artifacts[name].artifacts.add()
            runtime.type.CopyFrom(artifact_spec.artifact_type)
            runtime.uri = f"{pipeline_root.rstrip('/')}/{run_id}/{task_name}/{name}"
            if "://" not in pipeline_root:
                os.makedirs(runtime.uri, exist_ok=True)  # a bucket needs no folders; a local root does
        if publish_logs:
            logs = executor_input.outputs.artifacts[EXECUTOR_LOGS].artifacts.add()
            logs.type.schema_title = "system.Artifact"
            logs.uri = f"{pipeline_root.rstrip('/')}/{run_id}/{task_name}/{EXECUTOR_LOGS}"
        executor_input.outputs.output_file = OUTPUT_FILE
        if download is not None:
            for artifacts in executor_input.inputs.artifacts.values():
                for artifact in artifacts.artifacts:
                    download(artifact.uri)
        output = _launch(task_name, container, executor_input, {**os.environ, **(env or {})}, timeout)
        mlmd.executions += 1
        produced[task_name] = {}
        for name, artifacts in executor_input.outputs.artifacts.items():
            launched = artifacts.artifacts[0]
            written = output.artifacts[name].artifacts[0] if output.artifacts[name].artifacts else launched
            produced[task_name][name] = [
                mlmd.record(written.uri or launched.uri, _title(launched.type), written.metadata, name)
            ]
        mlmd.cache[key] = produced[task_name]
        if task_name == until:
            break
    return {
        task: {name: mlmd.runtime_artifact(ids[0]) for name, ids in outputs.items()}
        for task, outputs in produced.items()
    }


def _launch(
    task_name: str,
    container: Mapping[str, Any],
    executor_input: pipeline_spec_pb2.ExecutorInput,
    env: Mapping[str, str],
    timeout: float,
) -> pipeline_spec_pb2.ExecutorOutput:
    compact = json.dumps(json_format.MessageToDict(executor_input), separators=(",", ":"))
    command = [c.replace("{{$}}", compact) for c in container["command"]]
    args = [a.replace("{{$}}", compact) for a in container["args"]]
    if command[0] == "python":
        command[0] = sys.executable  # the image's python is detx's; here, this venv's
    os.makedirs(os.path.dirname(_OUTPUT_LOCK), exist_ok=True)
    with open(_OUTPUT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(OUTPUT_FILE):
            os.remove(OUTPUT_FILE)
        zygote = step_zygote.zygote_for(env) if command[1:] == ["-m", step_zygote.MODULE] else None
        if zygote is not None:
            with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
                returncode = zygote.run(args, log.name, timeout)
                stderr = log.read()
        else:
            result = subprocess.run(
                command + args, capture_output=True, text=True, timeout=timeout, check=False, env=dict(env)
            )
            returncode, stderr = result.returncode, result.stderr
        if returncode != 0:
            raise RuntimeError(f"step {task_name} failed ({returncode}):\n{stderr[-6000:]}")
        output = pipeline_spec_pb2.ExecutorOutput()
        if os.path.exists(OUTPUT_FILE):
            with open(OUTPUT_FILE) as f:
                json_format.Parse(f.read(), output, ignore_unknown_fields=True)
    return output


def artifact_dict(outputs: Mapping[str, pipeline_spec_pb2.RuntimeArtifact], key: str) -> dict[str, Any]:
    """One output artifact as the next step would receive it, as a dict (name, uri, metadata)."""
    return json.loads(json_format.MessageToJson(outputs[key]))
