"""DetectionTuner: TFX's Tuner with an on/off `tuning` property and the Trainer's starting weights.

TFX's Tuner spec, inputs and outputs (`best_hyperparameters`, a
HyperParameters artifact in TFX's file format, which TFX's and detx's Trainer
take as `hyperparameters`), plus three execution properties that can be KFP
run parameters: `tuning` ("on"/"off": a compiled pipeline always has the
node, and "off" costs one quick step), and `pretrained` and
`push_destination` (the Trainer's, so trials start where the Trainer will).
The search is `detx.components.tuner.tuner_fn.tuner_fn`, by import path.
"""

from __future__ import annotations

import json
from typing import Any

from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import Channel, standard_artifacts
from tfx.types.component_spec import ExecutionParameter
from tfx.types.standard_component_specs import TunerSpec

from detx.components.trainer.executor import PRETRAINED_KEY, PUSH_DESTINATION_KEY
from detx.components.trainer.options import TrainerOptions
from detx.components.tuner.executor import TUNING_KEY, Executor
from detx.components.tuner.options import TunerOptions

TUNER_FN = "detx.components.tuner.tuner_fn.tuner_fn"


class DetectionTunerSpec(TunerSpec):
    """TFX's TunerSpec plus the on/off switch and the starting weights."""

    PARAMETERS = {  # noqa: RUF012
        **TunerSpec.PARAMETERS,
        TUNING_KEY: ExecutionParameter(type=str),
        PRETRAINED_KEY: ExecutionParameter(type=str, optional=True),
        PUSH_DESTINATION_KEY: ExecutionParameter(type=str, optional=True),
    }


class DetectionTuner(base_component.BaseComponent):
    """Searches the Trainer's learning-rate scale, warm-up, batch norm and augmentation (components/tuner/space.py)."""

    SPEC_CLASS = DetectionTunerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: Channel,
        schema: Channel,
        trainer_options: TrainerOptions,
        options: TunerOptions,
        tuning: Any,
        pretrained: Any = None,
        push_destination: Any = "",
    ) -> None:
        """Builds the component.

        Args:
            examples: ExampleGen's examples (trials train on the train split, are scored on the eval split).
            schema: the schema (recorded by TFX).
            trainer_options: the Trainer's options: trials train as the Trainer will.
            options: the trial budget (`enabled` is not read: `tuning` is the switch).
            tuning: "on" or "off", or a RuntimeParameter.
            pretrained: the Trainer's starting weights (a str or a RuntimeParameter); None keeps the options'.
            push_destination: where `production` is served from (a str or a RuntimeParameter).
        """
        trainer_config = trainer_options.to_custom_config()
        spec = DetectionTunerSpec(
            examples=examples,
            schema=schema,
            tuner_fn=TUNER_FN,
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
            custom_config=json.dumps({**trainer_config, **options.to_custom_config()}, sort_keys=True),
            tuning=tuning,
            pretrained=trainer_options.pretrained if pretrained is None else pretrained,
            push_destination=push_destination,
            best_hyperparameters=Channel(type=standard_artifacts.HyperParameters),
            tuner_results=Channel(type=standard_artifacts.TunerResults),
        )
        super().__init__(spec=spec)
