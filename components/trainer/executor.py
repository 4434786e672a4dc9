"""The DetectionTrainer's executor: TFX's GenericExecutor after folding in the per-run settings."""

from __future__ import annotations

import json
from typing import Any

from tfx.components.trainer import executor as trainer_executor
from tfx.proto import trainer_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

TRAIN_STEPS_KEY = "train_steps"
PRETRAINED_KEY = "pretrained"


def fold_run_settings(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The execution properties TFX's Trainer expects, with detx's per-run settings folded in.

    Args:
        exec_properties: the DetectionTrainer's properties: TFX's Trainer
            properties plus `train_steps` and `pretrained`.

    Returns:
        A copy without the two keys, `train_args.num_steps` set to `train_steps`
        and `custom_config["pretrained"]` set to `pretrained`.

    Raises:
        ValueError: `train_steps` is not a positive number.
    """
    props = dict(exec_properties)
    steps = int(props.pop(TRAIN_STEPS_KEY))
    pretrained = props.pop(PRETRAINED_KEY, None) or ""
    if steps <= 0:
        raise ValueError(f"train_steps must be a positive number of steps, got {steps}")
    train_args = trainer_pb2.TrainArgs()
    proto_utils.json_to_proto(props[standard_component_specs.TRAIN_ARGS_KEY], train_args)
    train_args.num_steps = steps
    props[standard_component_specs.TRAIN_ARGS_KEY] = proto_utils.proto_to_json(train_args)
    custom = json.loads(props.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    custom["pretrained"] = pretrained
    props[standard_component_specs.CUSTOM_CONFIG_KEY] = json.dumps(custom, sort_keys=True)
    return props


class Executor(trainer_executor.GenericExecutor):
    """Runs `run_fn` with the step count and starting weights of this run."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        """See TFX's GenericExecutor; `train_steps` and `pretrained` override the configured ones."""
        super().Do(input_dict, output_dict, fold_run_settings(exec_properties))
