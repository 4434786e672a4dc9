"""The DetectionTrainer's executor: TFX's GenericExecutor with this run's settings on fn_args."""

from __future__ import annotations

import os
from typing import Any

import attr
import tensorflow as tf
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer import fn_args_utils

TRAIN_STEPS_KEY = "train_steps"
PRETRAINED_KEY = "pretrained"
PUSH_DESTINATION_KEY = "push_destination"
# How many GPUs the step's pod was given (`detx kfp compile` sets it on the Trainer's container next to
# the GPU request). TensorFlow silently trains on CPU when it finds no GPU; with this set, it fails.
EXPECTED_GPUS_ENV = "DETX_EXPECTED_GPUS"


@attr.s
class DetectionFnArgs(fn_args_utils.FnArgs):
    """TFX's FnArgs plus the starting weights and where production is, for which TFX's Trainer has no field."""

    pretrained = attr.ib(type=str, default="")
    # Where `pretrained: production` finds the served version (the Evaluator's and the Pusher's run parameter).
    push_destination = attr.ib(type=str, default="")


def with_run_settings(fn_args: Any, exec_properties: dict[str, Any]) -> DetectionFnArgs:
    """`fn_args` with this run's `train_steps`, `pretrained` and `push_destination`, each from its own exec property.

    TFX's own channel for the step count is `train_args.num_steps`, a field of
    the `train_args` proto, which TFX copies to `fn_args.train_steps`. A KFP
    run parameter can only fill a whole exec property, not a field inside a
    proto, so detx's one channel is the int `train_steps` property: the
    DetectionTrainer's `train_args` name the splits only, and the value goes
    straight to `fn_args.train_steps`, the name TFX's `run_fn` interface
    already uses.

    Raises:
        ValueError: `train_steps` is not a positive number, or `train_args.num_steps`
            was set too (a second channel for the same value).
    """
    if fn_args.train_steps is not None:
        raise ValueError("set the DetectionTrainer's train_steps, not train_args.num_steps")
    train_steps = int(exec_properties[TRAIN_STEPS_KEY])
    if train_steps <= 0:
        raise ValueError(f"train_steps must be a positive number of steps, got {train_steps}")
    fields = {**attr.asdict(fn_args, recurse=False), "train_steps": train_steps}
    return DetectionFnArgs(
        **fields,
        pretrained=exec_properties.get(PRETRAINED_KEY) or "",
        push_destination=exec_properties.get(PUSH_DESTINATION_KEY) or "",
    )


def check_expected_gpus(environ: Any = os.environ) -> int:
    """The GPUs TensorFlow sees, checked against what the step asked for (`EXPECTED_GPUS_ENV`).

    Raises:
        RuntimeError: GPUs were asked for and TensorFlow sees fewer; the message says what to check.
    """
    expected = int(environ.get(EXPECTED_GPUS_ENV) or 0)
    seen = len(tf.config.list_physical_devices("GPU"))
    if seen < expected:
        raise RuntimeError(
            f"the Trainer asked for {expected} GPU(s) (kubeflow.trainer_gpus) but TensorFlow sees {seen}: "
            "check that the node has NVIDIA's driver and device plugin and that the image's TensorFlow is a GPU "
            "build (`python -c 'import tensorflow as tf; print(tf.config.list_physical_devices())'`), "
            "or compile with kubeflow.trainer_gpus: 0 to train on CPU"
        )
    return seen


class Executor(trainer_executor.GenericExecutor):
    """Runs `run_fn` with the step count, starting weights and push destination of this run."""

    def _GetFnArgs(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> DetectionFnArgs:
        """TFX's `fn_args`, see `with_run_settings`; first, the GPUs the step asked for are there."""
        check_expected_gpus()
        return with_run_settings(super()._GetFnArgs(input_dict, output_dict, exec_properties), exec_properties)
