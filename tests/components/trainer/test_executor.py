"""The DetectionTrainer folds its per-run parameters into what TFX's Trainer reads."""

import json

import pytest
from tfx.proto import trainer_pb2
from tfx.utils import proto_utils

from detx.components.trainer.executor import fold_run_settings


def _props(**extra):
    return {
        "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"], num_steps=7)),
        "custom_config": json.dumps({"preset": "tiny", "pretrained": "/old/ckpt", "seed": 3}),
        "run_fn": "detx.components.trainer.run_fn.run_fn",
        **extra,
    }


def test_steps_and_pretrained_override_the_configured_ones():
    props = fold_run_settings(_props(train_steps=1234, pretrained="gs://bucket/zoo/ssd320"))
    assert "train_steps" not in props and "pretrained" not in props
    args = proto_utils.json_to_proto(props["train_args"], trainer_pb2.TrainArgs())
    assert args.num_steps == 1234 and list(args.splits) == ["train"]
    custom = json.loads(props["custom_config"])
    assert custom == {"preset": "tiny", "pretrained": "gs://bucket/zoo/ssd320", "seed": 3}


def test_an_empty_pretrained_parameter_means_from_scratch():
    custom = json.loads(fold_run_settings(_props(train_steps=5, pretrained=""))["custom_config"])
    assert custom["pretrained"] == ""


@pytest.mark.parametrize("steps", [0, -5])
def test_non_positive_steps_are_refused(steps):
    with pytest.raises(ValueError, match="positive number of steps"):
        fold_run_settings(_props(train_steps=steps))
