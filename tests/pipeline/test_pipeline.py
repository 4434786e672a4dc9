"""create_pipeline builds the DAG every runner uses, and it compiles to KFP v2 IR."""

import json

import pytest

from detx.pipeline.config import DataConfig, PipelineConfig, Stage
from detx.pipeline.pipeline import create_pipeline

ALL = [
    "DetectionExampleGen",
    "DetectionSchemaGen",
    "StatisticsGen",
    "ExampleValidator",
    "DataGate",
    "Trainer",
    "DetectionEvaluator",
    "DetectionInfraValidator",
    "DetectionPusher",
]


def _pipeline(root="/tmp/root", **kwargs):
    kwargs.setdefault("push_destination", "gs://bucket/models/detx")
    return create_pipeline(PipelineConfig(data=DataConfig(path="/data/coco"), **kwargs), root)


@pytest.mark.parametrize(
    "stage,count", [(Stage.VALIDATION, 5), (Stage.TRAINING, 6), (Stage.EVALUATION, 7), (Stage.PUSH, 9)]
)
def test_each_stage_adds_its_components(stage, count):
    assert [c.id for c in _pipeline(stop_after=stage).components] == ALL[:count]


def test_evaluation_without_a_push_destination_is_refused():
    with pytest.raises(ValueError, match="needs a push destination"):
        _pipeline(push_destination="")


def test_dag_wiring():
    p = _pipeline()
    ids = [c.id for c in p.components]
    assert ids == ALL
    by_id = {c.id: c for c in p.components}
    assert {u.id for u in by_id["DataGate"].upstream_nodes} == {
        "ExampleValidator",
        "DetectionExampleGen",
        "DetectionSchemaGen",
    }
    # The validator checks against the curated schema, not an inferred one.
    assert by_id["ExampleValidator"].inputs["schema"].producer_component_id == "DetectionSchemaGen"
    assert by_id["StatisticsGen"].inputs["schema"].producer_component_id == "DetectionSchemaGen"
    # Nothing trains before the gate; the Pusher pushes the Trainer's model with the Evaluator's verdict on it.
    assert "DataGate" in {u.id for u in by_id["Trainer"].upstream_nodes}
    assert by_id["DetectionEvaluator"].inputs["model"].producer_component_id == "Trainer"
    assert by_id["DetectionPusher"].inputs["model_blessing"].producer_component_id == "DetectionEvaluator"
    assert by_id["DetectionPusher"].inputs["model"].producer_component_id == "Trainer"
    # The Pusher also needs the InfraValidator's blessing, which checks only what the Evaluator blessed.
    assert by_id["DetectionPusher"].inputs["infra_blessing"].producer_component_id == "DetectionInfraValidator"
    assert by_id["DetectionInfraValidator"].inputs["model_blessing"].producer_component_id == "DetectionEvaluator"
    assert by_id["DetectionEvaluator"].exec_properties["baseline"] == "auto"


def test_compiles_to_kfp_v2_without_resolver_nodes(tmp_path):
    from tfx.v1.orchestration.experimental import KubeflowV2DagRunner, KubeflowV2DagRunnerConfig

    runner = KubeflowV2DagRunner(
        config=KubeflowV2DagRunnerConfig(default_image="detx:test"),
        output_dir=str(tmp_path),
        output_filename="pipeline.json",
    )
    runner.run(_pipeline("gs://bucket/root"), write_out=True)
    spec = json.loads((tmp_path / "pipeline.json").read_text())["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == set(ALL)
    assert not any("resolver" in name.lower() for name in spec["deploymentSpec"]["executors"])
    gate = spec["deploymentSpec"]["executors"]["DataGate_executor"]["container"]
    assert gate["image"] == "detx:test"
    assert "detx.components.data_gate.executor.Executor" in json.dumps(gate)


def test_the_tflite_step_runs_after_the_trainer_when_enabled_and_feeds_the_pusher():
    from detx.components.tflite.options import TFLiteOptions

    assert "DetectionTFLiteConverter" not in [c.id for c in _pipeline().components]  # off by default
    by_id = {c.id: c for c in _pipeline(tflite=TFLiteOptions(enabled=True, max_int8_map50_drop=0.05)).components}
    converter = by_id["DetectionTFLiteConverter"]
    assert converter.inputs["model"].producer_component_id == "Trainer"
    assert converter.exec_properties["max_int8_map50_drop"] == 0.05 and "enabled" not in converter.exec_properties
    assert by_id["DetectionPusher"].inputs["tflite_models"].producer_component_id == "DetectionTFLiteConverter"


def test_the_tuner_feeds_the_trainer_when_enabled_and_is_absent_when_off_locally():
    from detx.components.tuner.options import TunerOptions

    assert "DetectionTuner" not in [c.id for c in _pipeline().components]  # off by default
    p = _pipeline(tuner=TunerOptions(enabled=True, max_trials=3, trial_steps=50))
    by_id = {c.id: c for c in p.components}
    assert [c.id for c in p.components] == [*ALL[:5], "DetectionTuner", *ALL[5:]]
    tuner = by_id["DetectionTuner"]
    assert "DataGate" in {u.id for u in tuner.upstream_nodes}  # nothing is tuned on data the gate stopped
    assert by_id["Trainer"].inputs["hyperparameters"].producer_component_id == "DetectionTuner"
    assert tuner.exec_properties["tuning"] == "on"
    budget = json.loads(tuner.exec_properties["custom_config"])
    assert (budget["max_trials"], budget["trial_steps"], budget["preset"]) == (3, 50, "zoo320")
    assert "enabled" not in budget and "tuning" not in budget  # the switch has one channel: its own property


def test_on_kubeflow_the_tuner_is_always_in_the_dag_switched_by_the_tuning_run_parameter():
    from tfx.v1.dsl.experimental import RuntimeParameter

    from detx.pipeline import run_parameters

    config = PipelineConfig(data=DataConfig(path="/data/coco"), push_destination="gs://bucket/models/detx")
    p = create_pipeline(config, "gs://bucket/root", parameters=run_parameters.runtime_parameters(config))
    by_id = {c.id: c for c in p.components}
    tuning = by_id["DetectionTuner"].exec_properties["tuning"]
    assert isinstance(tuning, RuntimeParameter) and (tuning.name, tuning.default) == ("tuning", "off")
    assert by_id["Trainer"].inputs["hyperparameters"].producer_component_id == "DetectionTuner"


def test_batch_inference_scores_the_pushed_version_after_the_pusher_when_enabled_from_the_config_file():
    from detx.pipeline.config_file import build_config

    assert "DetectionBulkInferrer" not in [c.id for c in _pipeline().components]  # off by default
    config = build_config(
        {
            "data": {"path": "/data/spans"},
            "push_destination": "gs://bucket/models/detx",
            "batch_inference": {"enabled": True, "min_score": 0.4, "batch_size": 8},
        }
    )
    p = create_pipeline(config, "/tmp/root")
    by_id = {c.id: c for c in p.components}
    assert [c.id for c in p.components] == [*ALL, "DetectionBulkInferrer"]
    inferrer = by_id["DetectionBulkInferrer"]
    assert inferrer.inputs["pushed_model"].producer_component_id == "DetectionPusher"
    assert inferrer.inputs["examples"].producer_component_id == "DetectionExampleGen"
    assert inferrer.exec_properties["min_score"] == 0.4 and inferrer.exec_properties["batch_size"] == 8
    assert inferrer.exec_properties["data_path"] == "/data/spans"
