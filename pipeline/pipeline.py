"""`create_pipeline`: the one function that builds detx's TFX pipeline, for every runner."""

from __future__ import annotations

from tfx import v1 as tfx

from components.data_gate.component import DataGate
from components.example_gen.component import DetectionExampleGen
from components.example_gen.options import IngestOptions
from components.schema_gen.component import DetectionSchemaGen
from pipeline.config import PipelineConfig


def create_pipeline(
    config: PipelineConfig,
    pipeline_root: str,
    metadata_connection_config: object | None = None,
    beam_pipeline_args: list[str] | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the detx pipeline up to `config.stop_after`.

    DetectionExampleGen -> StatisticsGen -> ExampleValidator -> DataGate, with
    DetectionSchemaGen (the curated schema plus the dataset's label map)
    feeding StatisticsGen and ExampleValidator.

    Args:
        config: what to run.
        pipeline_root: where artifacts are written.
        metadata_connection_config: ML Metadata connection (None on KFP, which brings its own).
        beam_pipeline_args: arguments for the Beam-powered components.

    Returns:
        The pipeline, ready for LocalDagRunner or KubeflowV2DagRunner.
    """
    data = config.data
    example_gen = DetectionExampleGen(
        input_base=data.path,
        options=IngestOptions(
            data_format=data.format,
            image_dir=data.image_dir,
            max_rejected_fraction=data.max_rejected_fraction,
            max_pixels=data.max_pixels,
        ),
        splits=data.splits,
        pattern=data.pattern,
    )
    schema_gen = DetectionSchemaGen(examples=example_gen.outputs["examples"], schema_file=config.schema_file)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    data_gate = DataGate(
        anomalies=example_validator.outputs["anomalies"],
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
    )
    components = [example_gen, schema_gen, statistics_gen, example_validator, data_gate]
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
