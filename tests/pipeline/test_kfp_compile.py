"""`detx kfp compile`: the checked-in KFP spec is fresh, parses strictly, and runs on open-source KFP."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import yaml
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, PortableOptions, StandardOptions
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from detx.components.trainer import executor as trainer_executor
from detx.pipeline import kfp_compile, run_parameters
from detx.pipeline.cli import main
from detx.pipeline.config_file import build_config, layered_values
from tests.pipeline import kfp_launcher

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "kfp_manifests", "detx_config.yaml")
GOLDEN = os.path.join(ROOT, "kfp_manifests", "detx_pipeline.yaml")
# detx's entrypoint (pipeline/kfp_entrypoint.py) mends untyped inputs, then runs TFX's kubeflow_v2_run_executor.
ENTRYPOINT = ["python", "-m", "detx.pipeline.kfp_entrypoint"]
BEAM_STEPS = ("DetectionExampleGen", "StatisticsGen", "DataGate", "DetectionEvaluator")


def _config(*extra_files, **overrides):
    return build_config(layered_values([CONFIG, *extra_files], overrides))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A fresh `detx kfp compile` of the checked-in config, through the CLI."""
    out = tmp_path_factory.mktemp("kfp") / "detx_pipeline.yaml"
    result = CliRunner().invoke(main, ["kfp", "compile", "--config", CONFIG, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Trainer: 1 x nvidia.com/gpu" in result.output
    return out.read_text()


@pytest.fixture(scope="module")
def spec(compiled):
    """The compiled spec parsed strictly (unknown fields are errors) into kfp-pipeline-spec's proto."""
    parsed = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(next(yaml.safe_load_all(compiled)), parsed, ignore_unknown_fields=False)
    return parsed


def test_checked_in_spec_equals_a_fresh_compile(compiled):
    with open(GOLDEN) as f:
        checked_in = f.read()
    assert checked_in == compiled, "kfp_manifests/detx_pipeline.yaml is stale: run `make manifests` and commit it"


def test_every_step_runs_the_detx_image_through_detx_entrypoint_with_tfx_arguments(spec):
    config = _config()
    assert set(spec.root.dag.tasks) == {
        "DetectionExampleGen",
        "DetectionSchemaGen",
        "StatisticsGen",
        "ExampleValidator",
        "DataGate",
        "DetectionTuner",  # always compiled in: the tuning run parameter switches it
        "Trainer",
        "DetectionEvaluator",
        "DetectionInfraValidator",
        "DetectionTFLiteConverter",
        "DetectionPusher",
    }
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    assert len(executors) == 11
    for name, executor in executors.items():
        # Only containers: no resolver or importer nodes (open-source KFP cannot run resolvers).
        assert set(executor) == {"container"}, name
        container = executor["container"]
        assert container["image"] == config.kubeflow.image, name
        assert container["command"] == ENTRYPOINT, name
        assert "--executor_class_path" in container["args"], name
    assert "detx.components.trainer.executor.Executor" in executors["Trainer_executor"]["container"]["args"]


def test_the_trainer_alone_asks_for_a_gpu_and_fails_without_one(spec):
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    with_accelerator = {n for n, e in executors.items() if "accelerator" in e["container"].get("resources", {})}
    assert with_accelerator == {"Trainer_executor"}
    container = executors["Trainer_executor"]["container"]
    # The numeric fields only: every KFP 2.x driver reads them (from 2.5 as the fallback of the string fields).
    assert container["resources"] == {
        "accelerator": {"type": "nvidia.com/gpu", "count": "1"},
        "cpuLimit": 8.0,
        "memoryLimit": 32.0,
    }
    # The Trainer fails with a clear message when the GPU it asked for is not there (its executor reads this).
    assert container["env"] == [{"name": trainer_executor.EXPECTED_GPUS_ENV, "value": "1"}]
    others = {n: e["container"].get("resources") for n, e in executors.items() if n != "Trainer_executor"}
    assert set(map(json.dumps, others.values())) == {json.dumps({"cpuLimit": 4.0, "memoryLimit": 16.0})}


def test_kfp_2_0_to_2_3_accept_the_deployment_spec(compiled, tmp_path):
    """KFP 2.0-2.3 parse each executor strictly against their pipeline spec (kfp-pipeline-spec 0.2.2).

    Their API module predates the string resource fields (`resourceCpuLimit`, ...), so a spec
    carrying one is refused at upload; the old protos need protobuf's Python implementation.
    """
    old_spec = os.path.join(ROOT, ".tools", "kfp-pipeline-spec-0.2.2", "kfp", "pipeline_spec", "pipeline_spec_pb2.py")
    assert os.path.exists(old_spec), "run `make install` (it installs kfp-pipeline-spec 0.2.2 under .tools)"
    deployment = tmp_path / "deployment.json"
    deployment.write_text(json.dumps(next(yaml.safe_load_all(compiled))["deploymentSpec"]))
    check = (
        "import importlib.util, json, sys\n"
        "from google.protobuf import json_format\n"
        "spec = importlib.util.spec_from_file_location('old_pipeline_spec_pb2', sys.argv[1])\n"
        "old = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(old)\n"
        # One executor at a time: protobuf 4's Python parser mishandles the old protos' map fields.
        "for executor in json.load(open(sys.argv[2]))['executors'].values():\n"
        "    json_format.ParseDict(executor, old.PipelineDeploymentConfig.ExecutorSpec())\n"
    )
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    result = subprocess.run(
        [sys.executable, "-c", check, old_spec, str(deployment)], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # The check itself refuses what KFP 2.0 refuses.
    spec = json.loads(deployment.read_text())
    spec["executors"]["Trainer_executor"]["container"]["resources"]["resourceCpuLimit"] = "8"
    deployment.write_text(json.dumps(spec))
    refused = subprocess.run(
        [sys.executable, "-c", check, old_spec, str(deployment)], env=env, capture_output=True, text=True, check=False
    )
    assert "resourceCpuLimit" in refused.stderr


def test_the_gpu_trainer_tolerates_gpu_taints_through_kfps_kubernetes_platform_config(compiled):
    _, platform = yaml.safe_load_all(compiled)
    parsed = pipeline_spec_pb2.PlatformSpec()
    json_format.ParseDict(platform, parsed, ignore_unknown_fields=False)
    executors = json_format.MessageToDict(parsed.platforms["kubernetes"].deployment_spec)["executors"]
    trainer = kubernetes_executor_config_pb2.KubernetesExecutorConfig()
    json_format.ParseDict(executors["Trainer_executor"], trainer, ignore_unknown_fields=False)
    assert [json_format.MessageToDict(t) for t in trainer.tolerations] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert list(executors) == ["Trainer_executor"]


def test_gpu_node_selector_and_tolerations_are_configurable_and_checked():
    config = _config(
        kubeflow={
            "gpu_node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
            "gpu_tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"}],
        }
    )
    trainer = kfp_compile.kubernetes_platform(config)["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        "Trainer_executor"
    ]
    assert trainer["nodeSelector"] == {"labels": {"cloud.google.com/gke-accelerator": "nvidia-l4"}}
    assert trainer["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"}]
    assert kfp_compile.kubernetes_platform(_config(kubeflow={"trainer_gpus": 0})) is None
    with pytest.raises(ValueError, match=r"kubeflow\.gpu_tolerations: .* is not a Kubernetes toleration"):
        kfp_compile.kubernetes_platform(_config(kubeflow={"gpu_tolerations": [{"taint": "x"}]}))


def test_a_trainer_that_asked_for_a_gpu_and_sees_none_fails_naming_the_fix():
    assert trainer_executor.check_expected_gpus({}) == 0  # none asked for: CPU is fine
    with pytest.raises(RuntimeError, match=r"asked for 1 GPU\(s\) \(kubeflow.trainer_gpus\) but TensorFlow sees 0"):
        trainer_executor.check_expected_gpus({trainer_executor.EXPECTED_GPUS_ENV: "1"})


def test_every_run_parameter_has_a_type_and_default_and_is_used(spec):
    config = _config()
    declared = spec.root.input_definitions.parameters
    assert set(declared) == set(run_parameters.NAMES)
    kinds = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE"}
    for p in run_parameters.RUN_PARAMETERS:
        d = declared[p.name]
        assert pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(d.parameter_type) == kinds[p.ptype]
        assert d.HasField("default_value"), p.name
        value = json_format.MessageToDict(d.default_value)
        assert value == p.value(config), p.name
    used = {
        (task_name, key): value.component_input_parameter
        for task_name, task in spec.root.dag.tasks.items()
        for key, value in task.inputs.parameters.items()
        if value.component_input_parameter
    }
    assert used == {
        ("DetectionExampleGen", "input_base"): "data_root",
        ("DetectionExampleGen", "data_span"): "data_span",
        ("Trainer", "train_steps"): "train_steps",
        ("Trainer", "pretrained"): "pretrained",
        ("Trainer", "push_destination"): "push_destination",  # pretrained=production reads the served version
        ("DetectionEvaluator", "push_destination"): "push_destination",
        ("DetectionEvaluator", "min_map_50"): "min_map_50",
        ("DetectionEvaluator", "max_map_50_drop"): "max_map_50_drop",
        ("DetectionPusher", "push_destination"): "push_destination",
        ("DetectionPusher", "approval"): "approval",
        # The Tuner is always compiled in: the run parameter switches it, and its trials start where the Trainer does.
        ("DetectionTuner", "tuning"): "tuning",
        ("DetectionTuner", "pretrained"): "pretrained",
        ("DetectionTuner", "push_destination"): "push_destination",
    }


def test_a_run_parameter_reaches_its_executor_through_its_own_property_and_no_options_blob(spec):
    from tfx.components.trainer.fn_args_utils import FnArgs
    from tfx.orchestration.kubeflow.v2.container.kubeflow_v2_entrypoint_utils import parse_execution_properties

    from detx.components.data.ingest_options import IngestOptions
    from detx.components.evaluator.options import EvaluatorOptions
    from detx.components.trainer.executor import with_run_settings
    from detx.components.trainer.options import TrainerOptions

    submitted = {
        "train_steps": 7,
        "pretrained": "gs://b/zoo/ssd",
        "min_map_50": 0.42,
        "max_map_50_drop": 0.05,
        "tuning": "on",
    }
    values = kfp_launcher.run_values(spec, submitted)
    props = {}
    for name in ("DetectionExampleGen", "DetectionTuner", "Trainer", "DetectionEvaluator"):
        inputs_spec = spec.components[spec.root.dag.tasks[name].component_ref.name].input_definitions
        # As TFX's v2 container entrypoint turns the ExecutorInput into exec properties.
        props[name] = parse_execution_properties(
            kfp_launcher.task_parameter_values(spec, name, values), {}, inputs_spec
        )
    ingest = IngestOptions.from_custom_config(props["DetectionExampleGen"]["custom_config"])
    blobs = {
        "DetectionExampleGen": dataclasses.asdict(ingest),
        "Trainer": json.loads(props["Trainer"]["custom_config"]),
        "DetectionTuner": json.loads(props["DetectionTuner"]["custom_config"]),
        "DetectionEvaluator": json.loads(props["DetectionEvaluator"]["options"]),
    }
    for name, blob in blobs.items():
        assert not set(blob) & set(run_parameters.NAMES), f"{name}'s options carry a run parameter"
    assert type(ingest.max_pixels) is int and ingest.max_pixels == _config().data.max_pixels
    fn_args = with_run_settings(FnArgs(custom_config=blobs["Trainer"]), props["Trainer"])
    trainer = TrainerOptions.from_custom_config(fn_args.custom_config, pretrained=fn_args.pretrained)
    assert (fn_args.train_steps, trainer.pretrained) == (7, "gs://b/zoo/ssd")
    assert (props["DetectionTuner"]["tuning"], props["DetectionTuner"]["pretrained"]) == ("on", "gs://b/zoo/ssd")
    evaluator = EvaluatorOptions.from_exec_properties(props["DetectionEvaluator"])
    assert (evaluator.min_map_50, evaluator.max_map_50_drop) == (0.42, 0.05)


def test_steps_that_read_changing_data_or_production_are_never_cached_and_the_root_is_a_bucket(spec):
    caching = {name: task.caching_options.enable_cache for name, task in spec.root.dag.tasks.items()}
    # ExampleGen: KFP's cache key cannot see a new span under the same data_root (data_span 0 = newest).
    assert {n for n, on in caching.items() if not on} == {
        "DetectionExampleGen",
        "DetectionEvaluator",
        "DetectionPusher",
    }
    assert spec.default_pipeline_root == "gs://YOUR_BUCKET/detx/pipeline_root"


def _beam_args(spec, step):
    args = json_format.MessageToDict(spec.deployment_spec)["executors"][f"{step}_executor"]["container"]["args"]
    return [a for a in args if a.startswith("--") and "=" in a]


def test_default_cluster_beam_args_are_the_direct_runner_on_every_core(spec):
    for step in BEAM_STEPS:
        args = _beam_args(spec, step)
        options = PipelineOptions(args)
        assert options.view_as(StandardOptions).runner == "DirectRunner", step
        assert "--direct_num_workers=0" in args
        assert "--setup_file=/opt/detx-src/setup.py" in args


@pytest.mark.parametrize("runner_file", ["beam_dataflow.yaml", "beam_flink.yaml"])
def test_distributed_beam_configs_reach_every_beam_step(runner_file):
    path = os.path.join(ROOT, "pipeline", "configs", runner_file)
    config = _config(path)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(kfp_compile.compile_spec(config), spec)
    for step in BEAM_STEPS:
        options = PipelineOptions(_beam_args(spec, step))
        if runner_file == "beam_dataflow.yaml":
            assert options.view_as(StandardOptions).runner == "DataflowRunner"
            gcp = options.view_as(GoogleCloudOptions)
            assert gcp.project and gcp.region and gcp.temp_location.startswith("gs://")
            assert options.get_all_options()["sdk_container_image"] == config.kubeflow.image
        else:
            assert options.view_as(StandardOptions).runner == "PortableRunner"
            portable = options.view_as(PortableOptions)
            assert portable.job_endpoint.endswith(":8099") and portable.environment_type == "EXTERNAL"


def test_compile_without_a_push_destination_is_refused_and_leaves_no_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("data: {path: gs://b/data}\n")
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["kfp", "compile", "--config", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "push_destination" in result.output
    assert not out.exists()


@pytest.mark.parametrize("root", ["relative/dir", "/mnt/shared/root", "minio://mlpipeline/v2/artifacts"])
def test_a_pipeline_root_tfx_or_kfp_cannot_use_is_refused_with_the_fix(root):
    with pytest.raises(ValueError, match="is not one TFX can write on Kubeflow: use gs://"):
        _config(kubeflow={"pipeline_root": root})


def test_every_artifact_type_can_be_recreated_by_tfx_container_entrypoint(spec):
    # The entrypoint imports a custom artifact's schema title as <module>.<Class>.
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils

    titles = set()
    for component in spec.components.values():
        for definitions in (component.input_definitions, component.output_definitions):
            for artifact in definitions.artifacts.values():
                titles.add(yaml.safe_load(artifact.artifact_type.instance_schema)["title"])
    custom = {t for t in titles if t not in compiler_utils.TITLE_TO_CLASS_PATH}
    assert custom == {"detx.DataGateResult", "detx.TFLiteModels"}
    for title in titles:
        path = compiler_utils.TITLE_TO_CLASS_PATH.get(title, title)
        assert import_utils.import_class_by_path(path).TYPE_NAME in (title, title.split(".", 1)[1]), title
