"""`create_pipeline`: the one function that builds detx's TFX pipeline, for every runner."""

from __future__ import annotations

from tfx import v1 as tfx

from components.data_gate.component import DataGate
from components.evaluator.component import DetectionEvaluator
from components.example_gen.component import DetectionExampleGen
from components.example_gen.options import IngestOptions
from components.pusher.component import DetectionPusher
from components.schema_gen.component import DetectionSchemaGen
from pipeline.config import PipelineConfig, Stage

# The Trainer's entry point, by import path: the pipeline image installs detx,
# so no module file has to be copied next to the pipeline.
RUN_FN = "components.trainer.run_fn.run_fn"


def create_pipeline(
    config: PipelineConfig,
    pipeline_root: str,
    metadata_connection_config: object | None = None,
    beam_pipeline_args: list[str] | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the detx pipeline up to `config.stop_after`.

    DetectionExampleGen -> StatisticsGen -> ExampleValidator -> DataGate ->
    Trainer -> DetectionEvaluator -> DetectionPusher, with DetectionSchemaGen
    (the curated schema plus the dataset's label map) feeding StatisticsGen and
    ExampleValidator. The Trainer waits for DataGate, so data the gate stops is
    never trained on. There is no Resolver node (open-source KFP cannot run
    one): the Evaluator reads its baseline from the push destination.

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
    if config.stop_after.includes(Stage.TRAINING):
        trainer = tfx.components.Trainer(
            run_fn=RUN_FN,
            examples=example_gen.outputs["examples"],
            schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.train_steps),
            eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=0),
            custom_config=config.trainer.to_custom_config(),
        )
        trainer.add_upstream_node(data_gate)
        components.append(trainer)
    if config.stop_after.includes(Stage.EVALUATION):
        if not config.push_destination:
            raise ValueError("evaluation needs a push destination (where the model in production is)")
        evaluator = DetectionEvaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            push_destination=config.push_destination,
            baseline=config.baseline,
            options=config.evaluator,
        )
        components.append(evaluator)
    if config.stop_after.includes(Stage.PUSH):
        components.append(
            DetectionPusher(
                model=trainer.outputs["model"],
                model_blessing=evaluator.outputs["blessing"],
                examples=example_gen.outputs["examples"],
                push_destination=config.push_destination,
            )
        )
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
