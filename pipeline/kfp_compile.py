"""`detx kfp compile`: the pipeline `detx run` builds, compiled to a Kubeflow Pipelines v2 spec.

TFX's KubeflowV2DagRunner compiles the same `create_pipeline(...)`, with the
per-run settings as runtime parameters and the Trainer asking for a GPU. Then
detx adjusts what the runner cannot express:

- Every step's command is detx's entrypoint (`pipeline/kfp_entrypoint.py`),
  which mends the untyped input artifacts of open-source KFP's driver.
- KFP caches every task by default, keyed on its inputs. ExampleGen reads data
  that can change under the same `data_root`, and the Evaluator and the Pusher
  read the model in production, so their tasks are never served from KFP's
  cache (see UNCACHED_STEPS).
- The spec gets a default pipeline root, so that runs started from the KFP UI
  write artifacts where TFX can (KFP's own default, `minio://`, is not a file
  system TensorFlow knows). Runs created through the API do not read it:
  `detx kfp submit` and `detx kfp schedule` set it on the run (kfp_client.py).

The output is a PipelineSpec YAML, the file the KFP UI uploads.
"""

from __future__ import annotations

import tempfile
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.v1.orchestration.experimental import KubeflowV2DagRunner, KubeflowV2DagRunnerConfig

from detx.components import storage
from detx.components.trainer.executor import EXPECTED_GPUS_ENV
from detx.pipeline import run_parameters
from detx.pipeline.config import PipelineConfig
from detx.pipeline.kfp_entrypoint import COMMAND, EVERY_CORE
from detx.pipeline.pipeline import create_pipeline

# Steps KFP must never answer from its cache. KFP's cache key is the input artifact ids, the
# parameter values, image, command and arguments (lifecycle hooks such as TFX's ExampleGen
# driver never run): it cannot see data that arrived under an unchanged data_root (a new span
# when data_span is 0, "the newest"), nor the model in production, which the Evaluator and
# Pusher read. A fresh ExampleGen gives its readers new input ids, so they rerun too.
UNCACHED_STEPS = ("DetectionExampleGen", "DetectionEvaluator", "DetectionPusher")
GPU_STEP = "Trainer"
# Where the pipeline image keeps detx's source (the Dockerfile's first WORKDIR); Beam's --setup_file.
IMAGE_SOURCE = "/opt/detx-src"
ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def cluster_beam_args(config: PipelineConfig) -> list[str]:
    """Beam arguments baked into the compiled steps.

    The config's `beam_args` when set (Dataflow, Flink: pipeline/configs/);
    otherwise Beam's DirectRunner on every core of the step's pod, in
    processes. `--setup_file` points at detx's source in the pipeline image,
    which keeps TFX from building a package of it for every Beam step.
    """
    if config.beam_args:
        return list(config.beam_args)
    return [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        EVERY_CORE,
        f"--setup_file={IMAGE_SOURCE}/setup.py",
    ]


def trainer_resources(config: PipelineConfig) -> Any:
    """The Trainer's resource request: GPUs (when asked for), CPU and memory limits."""
    kfp = config.kubeflow
    spec = ResourceSpec()
    if kfp.trainer_gpus:
        spec.accelerator.type = kfp.gpu_type
        spec.accelerator.count = kfp.trainer_gpus
    if kfp.trainer_cpu:
        spec.cpu_limit = kfp.trainer_cpu
    if kfp.trainer_memory:
        spec.memory_limit = _gigabytes(kfp.trainer_memory, "trainer_memory")
    return spec


def _gigabytes(value: str, key: str) -> float:
    units = {"G": 1.0, "GB": 1.0, "GI": 1.073741824, "M": 1e-3, "MI": 1.048576e-3}
    number = value.rstrip("GgMmIiBb")
    unit = value[len(number) :].upper() or "G"
    if unit not in units or not number:
        raise ValueError(f"kubeflow.{key} {value!r}: write a size such as 32G or 16Gi")
    return float(number) * units[unit]


def step_resources(config: PipelineConfig) -> dict[str, Any]:
    """Every other step's limits, as the spec writes them: Beam's DirectRunner starts one worker per CPU.

    Set on the compiled executors rather than through TFX's platform config, which TFX's
    compiler drops for FileBasedExampleGen (its container spec is built apart).
    """
    kfp = config.kubeflow
    spec = ResourceSpec()
    if kfp.step_cpu:
        spec.cpu_limit = kfp.step_cpu
    if kfp.step_memory:
        spec.memory_limit = _gigabytes(kfp.step_memory, "step_memory")
    return dict(json_format.MessageToDict(spec))


def kubernetes_platform(config: PipelineConfig) -> dict[str, Any] | None:
    """KFP's Kubernetes platform config: the GPU Trainer's tolerations and node selector (None: nothing to add).

    The pipeline spec carries resource limits only; KFP's driver takes tolerations and node
    selectors from this second document of the package (kfp-kubernetes' format, applied in
    kubeflow/pipelines `backend/src/v2/driver/k8s.go`). Built with kfp-kubernetes' own
    `KubernetesExecutorConfig`, so a wrong key fails here, not on the cluster.
    """
    kfp = config.kubeflow
    if not kfp.trainer_gpus or not (kfp.gpu_tolerations or kfp.gpu_node_selector):
        return None
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

    executor = k8s.KubernetesExecutorConfig()
    for toleration in kfp.gpu_tolerations:
        try:
            json_format.ParseDict(toleration, executor.tolerations.add())
        except json_format.ParseError as e:
            raise ValueError(f"kubeflow.gpu_tolerations: {toleration!r} is not a Kubernetes toleration ({e})") from e
    executor.node_selector.labels.update(kfp.gpu_node_selector)
    executors = {f"{GPU_STEP}_executor": json_format.MessageToDict(executor)}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def compile_spec(config: PipelineConfig) -> dict[str, Any]:
    """Compiles the pipeline and returns the PipelineSpec as a dict (the YAML's content)."""
    kfp = config.kubeflow
    pipeline = create_pipeline(
        config,
        pipeline_root=kfp.pipeline_root,
        beam_pipeline_args=cluster_beam_args(config),
        parameters=run_parameters.runtime_parameters(config),
    )
    for component in pipeline.components:
        if component.id == GPU_STEP:
            component.with_platform_config(trainer_resources(config))
    runner = KubeflowV2DagRunner(
        # Schema 2.1 (what the KFP SDK 2.x writes) puts each parameter's type
        # and default into the spec itself, so the KFP UI's run form shows them.
        # Every step runs detx's entrypoint (TFX's own arguments), which mends the input artifacts
        # open-source KFP's driver sends without a type (pipeline/kfp_entrypoint.py).
        config=KubeflowV2DagRunnerConfig(
            display_name=config.name,
            default_image=kfp.image,
            default_commands=list(COMMAND),
            use_pipeline_spec_2_1=True,
        ),
        output_dir=tempfile.gettempdir(),
        output_filename="unused.yaml",
    )
    job = runner.run(pipeline, write_out=False)
    spec_dict = job["pipelineSpec"]
    limits = step_resources(config)
    for name, executor in spec_dict["deploymentSpec"]["executors"].items():
        if name != f"{GPU_STEP}_executor" and "container" in executor and limits:
            executor["container"]["resources"] = limits
    trainer = spec_dict["deploymentSpec"]["executors"].get(f"{GPU_STEP}_executor")
    if trainer is not None and kfp.trainer_gpus:
        trainer["container"]["env"] = [{"name": EXPECTED_GPUS_ENV, "value": str(kfp.trainer_gpus)}]
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(spec_dict, spec)
    for parameter in run_parameters.RUN_PARAMETERS:
        # TFX leaves defaults to the PipelineJob's runtime config, which a
        # PipelineSpec YAML does not carry; the KFP UI reads them from here.
        definition = spec.root.input_definitions.parameters[parameter.name]
        value = parameter.value(config)
        if isinstance(value, str):
            definition.default_value.string_value = value
        else:
            definition.default_value.number_value = value
        definition.is_optional = True
        definition.description = parameter.help
    for name in UNCACHED_STEPS:
        if name in spec.root.dag.tasks:
            spec.root.dag.tasks[name].caching_options.enable_cache = False
    spec.default_pipeline_root = kfp.pipeline_root
    return json_format.MessageToDict(spec)


def header(config: PipelineConfig) -> str:
    """The comment block on top of the YAML: what it is and its run parameters."""
    lines = [
        f"# detx pipeline {config.name!r}: Kubeflow Pipelines v2 spec, written by `detx kfp compile`.",
        "# Upload it in the KFP UI (Pipelines > Upload pipeline) or use `detx kfp submit`.",
        f"# Image: {config.kubeflow.image}",
        f"# Pipeline root: {config.kubeflow.pipeline_root}",
        "# Run parameters:",
    ]
    for p in run_parameters.RUN_PARAMETERS:
        lines.append(f"#   {p.name} ({p.ptype.__name__}, default {p.value(config)!r}): {p.help}")
    return "\n".join(lines) + "\n"


def to_yaml(config: PipelineConfig, spec: dict[str, Any]) -> str:
    """The YAML text: header, the spec with sorted keys (stable for golden files), then the platform config.

    The platform config is a second YAML document, as the KFP SDK with kfp-kubernetes writes it;
    KFP's API server reads both documents of an uploaded package.
    """
    text = header(config) + yaml.safe_dump(spec, sort_keys=True, width=120)
    platform = kubernetes_platform(config)
    if platform is not None:
        text += "---\n" + yaml.safe_dump(platform, sort_keys=True, width=120)
    return text


def compile_to_file(config: PipelineConfig, output: str) -> dict[str, Any]:
    """Compiles and writes the YAML atomically (a failed compile leaves any old file as it was).

    Returns:
        The spec as a dict.
    """
    spec = compile_spec(config)
    storage.write_atomic(output, to_yaml(config, spec))
    return spec
