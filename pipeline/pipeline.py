"""`create_pipeline`: the one function that builds detx's TFX pipeline, for every runner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfx import v1 as tfx

from detx.components.batch_inference.component import DetectionBulkInferrer
from detx.components.data_gate.component import DataGate
from detx.components.evaluator.component import DetectionEvaluator
from detx.components.example_gen.component import DetectionExampleGen
from detx.components.infra_validator.component import DetectionInfraValidator
from detx.components.pusher.component import DetectionPusher
from detx.components.schema_gen.component import DetectionSchemaGen
from detx.components.tflite.component import DetectionTFLiteConverter
from detx.components.trainer.component import DetectionTrainer
from detx.components.tuner.component import DetectionTuner
from detx.components.tuner.options import ON as TUNING_ON
from detx.pipeline import run_parameters
from detx.pipeline.config import PipelineConfig, Stage


def create_pipeline(
    config: PipelineConfig,
    pipeline_root: str,
    metadata_connection_config: object | None = None,
    beam_pipeline_args: list[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> tfx.dsl.Pipeline:
    """Builds the detx pipeline up to `config.stop_after`.

    DetectionExampleGen -> StatisticsGen -> ExampleValidator -> DataGate ->
    Trainer -> DetectionEvaluator -> DetectionInfraValidator -> DetectionPusher, with DetectionSchemaGen
    (the curated schema plus the dataset's label map) feeding StatisticsGen and
    ExampleValidator. The Trainer waits for DataGate, so data the gate stops is
    never trained on. With `tflite.enabled`, DetectionTFLiteConverter turns the
    Trainer's model into TFLite models, which the Pusher ships inside the
    version. There is no Resolver node (open-source KFP cannot run one): the
    Evaluator reads its baseline from the push destination. A DetectionTuner
    before the Trainer feeds it the best hyperparameters: locally only with
    `tuner.enabled`; on Kubeflow always, switched by the `tuning` run parameter.
    With `batch_inference.enabled`, DetectionBulkInferrer scores the span's
    images with the version the Pusher pushed (docs/batch_inference.md).

    Args:
        config: what to run.
        pipeline_root: where artifacts are written.
        metadata_connection_config: ML Metadata connection (None on KFP, which brings its own).
        beam_pipeline_args: arguments for the Beam-powered components.
        parameters: values for the per-run settings named in
            `run_parameters.RUN_PARAMETERS` (plain values or TFX
            RuntimeParameters, which KFP shows in its run form); None takes
            them from `config`.

    Returns:
        The pipeline, ready for LocalDagRunner or KubeflowV2DagRunner.
    """
    data = config.data
    values = dict(run_parameters.plain_values(config))
    values.update(parameters or {})
    if not config.push_destination and config.stop_after.includes(Stage.EVALUATION):
        raise ValueError("evaluation needs a push destination (where the model in production is)")
    example_gen = DetectionExampleGen(
        input_base=values["data_root"],
        options=data.ingest_options(),
        splits=data.splits,
        pattern=data.pattern,
        # A plain span pins the span locally; None lets TFX pick the newest.
        span=values["data_span"] if parameters and "data_span" in parameters else data.span,
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
        tuner = None
        # A RuntimeParameter (Kubeflow) is decided per run, so the node must be in the spec.
        if not isinstance(values["tuning"], str) or values["tuning"] == TUNING_ON:
            tuner = DetectionTuner(
                examples=example_gen.outputs["examples"],
                schema=schema_gen.outputs["schema"],
                trainer_options=config.trainer,
                options=config.tuner,
                tuning=values["tuning"],
                pretrained=values["pretrained"],
                push_destination=values["push_destination"],
            )
            tuner.add_upstream_node(data_gate)
            components.append(tuner)
        trainer = DetectionTrainer(
            examples=example_gen.outputs["examples"],
            schema=schema_gen.outputs["schema"],
            options=config.trainer,
            train_steps=values["train_steps"],
            pretrained=values["pretrained"],
            # Where `pretrained: production` finds the served version: the Evaluator's and the Pusher's destination.
            push_destination=values["push_destination"],
            hyperparameters=tuner.outputs["best_hyperparameters"] if tuner is not None else None,
        ).with_id("Trainer")
        trainer.add_upstream_node(data_gate)
        components.append(trainer)
        tflite = None
        if config.tflite.enabled:
            tflite = DetectionTFLiteConverter(
                model=trainer.outputs["model"],
                examples=example_gen.outputs["examples"],
                options=config.tflite,
                model_name=config.name,
            )
            components.append(tflite)
    if config.stop_after.includes(Stage.EVALUATION):
        evaluator = DetectionEvaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            push_destination=values["push_destination"],
            baseline=config.baseline,
            options=config.evaluator,
            min_map_50=values["min_map_50"],
            max_map_50_drop=values["max_map_50_drop"],
        )
        components.append(evaluator)
    if config.stop_after.includes(Stage.PUSH):
        infra_validator = DetectionInfraValidator(
            model=trainer.outputs["model"],
            examples=example_gen.outputs["examples"],
            model_blessing=evaluator.outputs["blessing"],
            options=config.infra_validator,
        )
        pusher = DetectionPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            infra_blessing=infra_validator.outputs["blessing"],
            examples=example_gen.outputs["examples"],
            push_destination=values["push_destination"],
            statistics=statistics_gen.outputs["statistics"],
            tflite_models=tflite.outputs["tflite_models"] if tflite is not None else None,
            approval=values["approval"],
            release=config.release,
        )
        components.extend([infra_validator, pusher])
        if config.batch_inference.enabled:
            # BulkInferrer's place in a TFX DAG: the span's images scored by the version just pushed.
            components.append(
                DetectionBulkInferrer(
                    pushed_model=pusher.outputs["pushed_model"],
                    examples=example_gen.outputs["examples"],
                    data_path=values["data_root"],
                    options=config.batch_inference,
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
