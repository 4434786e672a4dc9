"""create_pipeline builds the DAG every runner uses, and it compiles to KFP v2 IR."""

import json

from pipeline.config import DataConfig, PipelineConfig
from pipeline.pipeline import create_pipeline


def _pipeline(root="/tmp/root"):
    return create_pipeline(PipelineConfig(data=DataConfig(path="/data/coco")), root)


def test_validation_dag_order_and_wiring():
    p = _pipeline()
    ids = [c.id for c in p.components]
    assert ids == ["DetectionExampleGen", "DetectionSchemaGen", "StatisticsGen", "ExampleValidator", "DataGate"]
    by_id = {c.id: c for c in p.components}
    assert {u.id for u in by_id["DataGate"].upstream_nodes} == {
        "ExampleValidator",
        "DetectionExampleGen",
        "DetectionSchemaGen",
    }
    # The validator checks against the curated schema, not an inferred one.
    assert by_id["ExampleValidator"].inputs["schema"].producer_component_id == "DetectionSchemaGen"
    assert by_id["StatisticsGen"].inputs["schema"].producer_component_id == "DetectionSchemaGen"


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
    assert set(tasks) == {"DetectionExampleGen", "DetectionSchemaGen", "StatisticsGen", "ExampleValidator", "DataGate"}
    assert not any("resolver" in name.lower() for name in spec["deploymentSpec"]["executors"])
    gate = spec["deploymentSpec"]["executors"]["DataGate_executor"]["container"]
    assert gate["image"] == "detx:test"
    assert "components.data_gate.executor.Executor" in json.dumps(gate)
