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


def record_hyperparameters(fn_args):
    """A run_fn that writes the Tuner's values it was given where the model would go."""
    os.makedirs(fn_args.serving_model_dir)
    with open(os.path.join(fn_args.serving_model_dir, "hp.json"), "w") as f:
        json.dump(fn_args.hyperparameters, f)


def test_the_tuners_best_hyperparameters_reach_run_fn(tmp_path):
    from detx.components.tuner.executor import BEST_HYPERPARAMETERS_FILE

    best = {"space": [], "values": {"learning_rate_scale": 0.3, "batchnorm": "frozen"}}
    (tmp_path / "hp").mkdir()
    (tmp_path / "hp" / BEST_HYPERPARAMETERS_FILE).write_text(json.dumps(best))
    examples, hp = standard_artifacts.Examples(), standard_artifacts.HyperParameters()
    examples.uri, hp.uri = str(tmp_path / "examples"), str(tmp_path / "hp")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    Executor().Do(
        {"examples": [examples], "hyperparameters": [hp]},
        {"model": [model], "model_run": [model_run]},
        {
            "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
            "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
            "custom_config": json.dumps(CUSTOM_CONFIG),
            "run_fn": f"{__name__}.record_hyperparameters",
            "train_steps": 42,
        },
    )
    assert json.loads((tmp_path / "model" / "Format-Serving" / "hp.json").read_text()) == best


def test_run_fn_trains_with_the_tuned_values_and_records_them(tmp_path, monkeypatch):
    import tensorflow as tf

    from detx.components.model_card.facts import training_facts
    from detx.components.modeling.network import build_network
    from detx.components.trainer import export, train
    from detx.components.trainer.executor import DetectionFnArgs
    from detx.components.trainer.run_fn import run_fn
    from detx.components.tuner import space
    from testing.data import write_examples

    uri = write_examples(str(tmp_path / "examples"), 6, seed=1, splits={"train": 4, "eval": 2})
    seen = {}

    # Training and export are stood in for (a real run_fn takes a minute here): what is checked is the
    # configs run_fn hands to train.train.
    def fake_train(dataset_fn, model_config, train_config, num_classes, run_dir, **_):
        seen.update(model=model_config, train=train_config)
        return train.TrainResult(build_network(model_config, num_classes), {"loss": [1.0]}, 1, 0)

    def fake_export(network, model_config, label_map_path, export_dir):
        tf.io.gfile.makedirs(export_dir)
        return export_dir

    monkeypatch.setattr(train, "train", fake_train)
    monkeypatch.setattr(export, "export", fake_export)
    tuned = space.search_space("tiny", freeze_batchnorm=False)
    for name, value in (("learning_rate_scale", 0.3), ("warmup_fraction", 0.25), ("batchnorm", "0.99")):
        tuned.values[name] = value
    tuned.values["augment"] = False
    fn_args = DetectionFnArgs(
        train_files=[os.path.join(uri, "Split-train", "*")],
        custom_config={"preset": "tiny", "batch_size": 4},
        train_steps=40,
        serving_model_dir=str(tmp_path / "model"),
        model_run_dir=str(tmp_path / "model_run"),
        hyperparameters=tuned.get_config(),
    )
    run_fn(fn_args)
    t, m = seen["train"], seen["model"]
    # tiny's 0.04 at its reference batch 16; the batch override scales it (4/16) when the optimizer is built.
    assert (t.base_learning_rate, t.warmup_learning_rate) == pytest.approx((0.04 * 0.3, 0.0133 * 0.3))
    assert (t.warmup_steps, t.freeze_batchnorm, t.augment, m.bn_momentum) == (10, False, False, 0.99)
    assert (t.train_steps, t.batch_size) == (40, 4)
    facts = training_facts(fn_args.serving_model_dir)
    assert facts["tuning"]["values"] == {
        "learning_rate_scale": 0.3,
        "warmup_fraction": 0.25,
        "batchnorm": "0.99",
        "augment": False,
    }
    assert facts["tuning"]["space"]["learning_rate_scale"] == [0.1, 0.3, 1.0, 2.0]
    assert facts["learning_rate"] == pytest.approx(0.04 * 0.3 * 4 / 16) and facts["warmup_steps"] == 10


def test_hyperparameters_the_trainer_does_not_know_are_refused():
    from detx.components.trainer.options import TrainerOptions

    with pytest.raises(ValueError, match=r"the hyperparameters name dropout, which the detx Trainer does not know"):
        TrainerOptions(preset="tiny").configs(10, hyperparameters={"values": {"dropout": 0.5}})
