"""DetectionTrainer: TFX's Trainer with the settings people change per run as plain parameters.

TFX's Trainer keeps the step count inside the `train_args` proto and everything
else in one `custom_config` JSON string, so a KFP run form would ask users to
type JSON. This component adds `train_steps` (int), `pretrained` (str) and
`push_destination` (str, where `pretrained: production` finds the served
version) execution properties, which can be KFP runtime parameters. They are
the only channel of these values: `train_args` names the splits only and
`custom_config` holds the other TrainerOptions; the executor puts them on
`fn_args` (`fn_args.train_steps`, `fn_args.pretrained`,
`fn_args.push_destination`) before TFX's GenericExecutor runs `run_fn`.
Everything else is the stock Trainer (same spec and outputs), including the
optional `hyperparameters` input: a Tuner's best values, which TFX hands to
`run_fn` as `fn_args.hyperparameters` and `run_fn` applies over the options.
"""

from __future__ import annotations

import json
from typing import Any

from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import Channel, standard_artifacts
from tfx.types.component_spec import ExecutionParameter
from tfx.types.standard_component_specs import TrainerSpec

from detx.components.trainer.executor import PRETRAINED_KEY, PUSH_DESTINATION_KEY, TRAIN_STEPS_KEY, Executor
from detx.components.trainer.options import TrainerOptions

# The Trainer's entry point, by import path: the pipeline image installs detx,
# so no module file has to be copied next to the pipeline.
RUN_FN = "detx.components.trainer.run_fn.run_fn"


class DetectionTrainerSpec(TrainerSpec):
    """TFX's TrainerSpec plus the per-run settings."""

    PARAMETERS = {  # noqa: RUF012
        **TrainerSpec.PARAMETERS,
        TRAIN_STEPS_KEY: ExecutionParameter(type=int),
        PRETRAINED_KEY: ExecutionParameter(type=str, optional=True),
        PUSH_DESTINATION_KEY: ExecutionParameter(type=str, optional=True),
    }


class DetectionTrainer(base_component.BaseComponent):
    """Trains the detector on the train split and exports a three-signature SavedModel."""

    SPEC_CLASS = DetectionTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: Channel,
        schema: Channel,
        options: TrainerOptions,
        train_steps: Any,
        pretrained: Any = None,
        push_destination: Any = "",
        hyperparameters: Channel | None = None,
    ) -> None:
        """Builds the component.

        Args:
            examples: ExampleGen's examples (the train split is used).
            schema: the schema (recorded by TFX; the input pipeline is fixed).
            options: preset, batch size, seed and the other training settings.
            train_steps: training steps: an int or a RuntimeParameter.
            pretrained: starting weights (a str or a RuntimeParameter); None
                keeps `options.pretrained`.
            push_destination: where `production` is served from (a str or a
                RuntimeParameter; "" when the run has none).
            hyperparameters: the DetectionTuner's `best_hyperparameters` (None: no tuning step).
        """
        spec = DetectionTrainerSpec(
            examples=examples,
            schema=schema,
            # No num_steps: the `train_steps` property is the step count's one channel (see executor.py).
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            # Evaluation is the Evaluator's job; TFX wants eval_args anyway.
            eval_args=trainer_pb2.EvalArgs(splits=["eval"], num_steps=0),
            run_fn=RUN_FN,
            custom_config=json.dumps(options.to_custom_config(), sort_keys=True),
            train_steps=train_steps,
            pretrained=options.pretrained if pretrained is None else pretrained,
            push_destination=push_destination,
            hyperparameters=hyperparameters,
            model=Channel(type=standard_artifacts.Model),
            model_run=Channel(type=standard_artifacts.ModelRun),
        )
        super().__init__(spec=spec)
