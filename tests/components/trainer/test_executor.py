"""The DetectionTrainer's run settings reach `run_fn` through their own exec properties, and only through them."""

import json
import os

import pytest
from tfx.components.trainer import fn_args_utils
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from detx.components.trainer.executor import Executor, with_run_settings

CUSTOM_CONFIG = {"preset": "tiny", "seed": 3}


def test_train_steps_and_pretrained_come_from_their_exec_properties():
    fn_args = fn_args_utils.FnArgs(custom_config=dict(CUSTOM_CONFIG))
    result = with_run_settings(
        fn_args, {"train_steps": 1234, "pretrained": "production", "push_destination": "gs://bucket/models/detx"}
    )
    assert (result.train_steps, result.pretrained) == (1234, "production")
    assert result.push_destination == "gs://bucket/models/detx"
    assert result.custom_config == CUSTOM_CONFIG  # nothing is folded into custom_config


@pytest.mark.parametrize("props", [{"train_steps": 5, "pretrained": ""}, {"train_steps": 5}])
def test_an_empty_or_missing_pretrained_parameter_means_from_scratch(props):
    result = with_run_settings(fn_args_utils.FnArgs(), props)
    assert (result.pretrained, result.push_destination) == ("", "")


@pytest.mark.parametrize("steps", [0, -5])
def test_non_positive_steps_are_refused(steps):
    with pytest.raises(ValueError, match="positive number of steps"):
        with_run_settings(fn_args_utils.FnArgs(), {"train_steps": steps})


def test_a_second_channel_through_train_args_num_steps_is_refused():
    with pytest.raises(ValueError, match=r"not train_args\.num_steps"):
        with_run_settings(fn_args_utils.FnArgs(train_steps=7), {"train_steps": 5})


def record_fn_args(fn_args):
    """A run_fn that writes what it was given where the model would go."""
    os.makedirs(fn_args.serving_model_dir)
    seen = {
        "train_steps": fn_args.train_steps,
        "pretrained": fn_args.pretrained,
        "push_destination": fn_args.push_destination,
        "custom": fn_args.custom_config,
    }
    with open(os.path.join(fn_args.serving_model_dir, "fn_args.json"), "w") as f:
        json.dump(seen, f)


def test_the_executor_hands_run_fn_the_exec_properties(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    Executor().Do(
        {"examples": [examples]},
        {"model": [model], "model_run": [model_run]},
        {
            "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
            "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
            "custom_config": json.dumps(CUSTOM_CONFIG),
            "run_fn": f"{__name__}.record_fn_args",
            "train_steps": 42,
            "pretrained": "/zoo/ssd320",
            "push_destination": "/models/detx",
        },
    )
    with open(tmp_path / "model" / "Format-Serving" / "fn_args.json") as f:
        seen = json.load(f)
    assert seen == {
        "train_steps": 42,
        "pretrained": "/zoo/ssd320",
        "push_destination": "/models/detx",
        "custom": CUSTOM_CONFIG,
    }
