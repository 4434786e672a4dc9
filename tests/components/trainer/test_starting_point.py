"""What a run starts from: `production` and its fallback, pinning, the warm-start schedule, the divergence guard.

Also: the training weights travel through the InfraValidator's staging and the Pusher unchanged.
"""

from __future__ import annotations

import filecmp
import math
import os

import pytest
from tfx.components.evaluator import constants as tfx_constants
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from detx.components.evaluator.report import EvaluationReport
from detx.components.infra_validator.report import BLESSED_KEY, HAS_MODEL_KEY, InfraReport
from detx.components.infra_validator.validate import stage
from detx.components.model_store import ModelStore, copy_tree
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network, class_head_columns
from detx.components.pusher import executor as pusher_executor
from detx.components.trainer import pretrained, train, training_weights
from detx.components.trainer.options import TrainerOptions
from detx.components.trainer.warm_start import WarmStartError
from testing.data import write_examples

MODEL, _ = preset("tiny")


@pytest.fixture(scope="module")
def network():
    return build_network(MODEL, 3)


def _version_with_weights(path, fake_saved_model, network) -> str:
    model = fake_saved_model(path)  # the stores copy files; training weights are real
    training_weights.write(network, MODEL, model)
    return model


def test_production_with_nothing_served_falls_back_and_says_to_what(tmp_path):
    messages: list[str] = []
    dest = str(tmp_path / "models" / "detx")
    start = pretrained.resolve("production", dest, "/zoo/ssd320", log=messages.append)
    assert (start.path, start.warm) == ("/zoo/ssd320", False)
    assert messages == [
        f"pretrained 'production': nothing is served from {dest} yet; starting from /zoo/ssd320 instead "
        "(trainer.pretrained_fallback)"
    ]
    assert start.facts([]) == {
        "pretrained": "/zoo/ssd320",
        "pretrained_setting": "production",
        "warm_start": None,
        "pretrained_fallback_reason": f"nothing is served from {dest} yet",
    }
    start = pretrained.resolve("production", dest, "", log=messages.append)
    assert start.path == "" and "starting from nothing (from scratch) instead" in messages[-1]
    with pytest.raises(ValueError, match="'production' needs the push destination"):
        pretrained.resolve("production", "", "", log=messages.append)


def test_a_served_version_without_training_weights_falls_back_and_is_not_pinned(tmp_path, fake_saved_model):
    dest = str(tmp_path / "models")
    ModelStore(dest).push(fake_saved_model(tmp_path / "old"), {})
    messages: list[str] = []
    start = pretrained.resolve("production", dest, "", log=messages.append)
    assert not start.warm and "version 1 served from" in messages[0] and "has no training weights" in messages[0]
    assert pretrained.pin_production("production", dest) == "production"  # the Trainer decides (and says) later
    with pytest.raises(WarmStartError, match=r"has no training weights .*start from a Model Zoo checkpoint"):
        pretrained.resolve(ModelStore(dest).path(1), dest, "", log=messages.append)  # asked for by path: an error


def test_production_is_pinned_to_the_served_version_only_when_it_can_warm_start(tmp_path, fake_saved_model, network):
    dest = str(tmp_path / "models")
    assert pretrained.pin_production("production", dest) == "production"  # nothing served
    ModelStore(dest).push(_version_with_weights(tmp_path / "m", fake_saved_model, network), {})
    assert pretrained.pin_production("production", dest) == ModelStore(dest).path(1)
    assert pretrained.pin_production("/zoo/ssd320", dest) == "/zoo/ssd320"
    assert pretrained.production_model(dest) == (1, ModelStore(dest).path(1))


def test_the_warm_start_schedule_is_shorter_and_slower_and_bounded():
    options = TrainerOptions(preset="tiny", warm_start_steps=0.25, warm_start_learning_rate=0.5)
    _, full = options.configs(400)
    _, warm = options.configs(400, warm_start=True)
    assert (full.train_steps, full.warmup_steps) == (400, 100)
    assert (warm.train_steps, warm.warmup_steps, warm.checkpoint_every) == (100, 25, 100)
    assert warm.scaled_learning_rate() == pytest.approx(tuple(0.5 * r for r in full.scaled_learning_rate()))
    assert options.configs(1, warm_start=True)[1].train_steps == 1  # never 0
    with pytest.raises(ValueError, match=r"trainer.warm_start_learning_rate is a fraction .* in \(0, 1\], got 1.5"):
        TrainerOptions(warm_start_learning_rate=1.5)
    with pytest.raises(ValueError, match=r"trainer.warm_start_steps is a fraction"):
        TrainerOptions(warm_start_steps=0)
    with pytest.raises(ValueError, match="not 'production'"):
        TrainerOptions(pretrained_fallback="production")
    assert "pretrained_fallback" in TrainerOptions().to_custom_config()  # travels in custom_config, not a run parameter


def test_a_diverged_loss_stops_training_with_the_learning_rate_and_the_fix():
    _, config = TrainerOptions(preset="tiny", batch_size=4).configs(200)
    guard = train._DivergenceGuard(config)
    guard.on_epoch_end(0, {"loss": 1.5})  # finite: nothing happens
    with pytest.raises(train.TrainingDiverged, match=r"the loss is nan after step 200: .* 0\.01 with batch 4\. Lower"):
        guard.on_epoch_end(1, {"loss": math.nan})
    with pytest.raises(train.TrainingDiverged, match=r"tensorflow/models#10509"):
        guard.on_epoch_end(0, {"loss": math.inf})


def test_class_head_columns_follow_the_reshape():
    columns = class_head_columns(6, 3)
    assert columns.shape == (6, 4) and columns[1, 2] == 6 and class_head_columns(6, 4)[1, 2] == 7


def test_training_weights_pass_the_infra_validators_staging_and_the_pusher_unchanged(
    tmp_path, fake_saved_model, network
):
    model = _version_with_weights(tmp_path / "model" / "Format-Serving", fake_saved_model, network)
    staged = stage(model, [], str(tmp_path / "infra" / "candidate"))  # what the InfraValidator hands the Pusher
    model_artifact = standard_artifacts.Model()
    model_artifact.uri, model_artifact.id = str(tmp_path / "model"), 3
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    blessing.set_int_custom_property(tfx_constants.ARTIFACT_PROPERTY_BLESSED_KEY, 1)
    EvaluationReport(True, [], {"map_50": 0.5}, None, None, {}, 0.3, 0.01).write(blessing.uri)
    infra = standard_artifacts.InfraBlessing()
    infra.uri = str(tmp_path / "infra_blessing")
    InfraReport(blessed=True, reasons=[]).write(infra.uri)
    infra.set_int_custom_property(BLESSED_KEY, 1)
    infra.set_int_custom_property(HAS_MODEL_KEY, 1)
    copy_tree(staged, path_utils.stamped_model_path(infra.uri))  # as the InfraValidator's executor does
    examples = standard_artifacts.Examples()
    examples.uri = write_examples(str(tmp_path / "examples"), 4)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    dest = str(tmp_path / "dest")
    pusher_executor.Executor().Do(
        {"model": [model_artifact], "model_blessing": [blessing], "infra_blessing": [infra], "examples": [examples]},
        {"pushed_model": [pushed]},
        {pusher_executor.PUSH_DESTINATION: dest},
    )
    version = ModelStore(dest).path(1)
    ours, theirs = (os.path.join(d, training_weights.WEIGHTS_DIR) for d in (model, version))
    names = sorted(os.listdir(ours))
    assert names == ["weights.data-00000-of-00001", "weights.index", "weights.json"]
    _, mismatch, errors = filecmp.cmpfiles(ours, theirs, names, shallow=False)
    assert not mismatch and not errors
    assert os.path.exists(os.path.join(version, "assets.extra", "tf_serving_warmup_requests"))  # the infra copy
    assert training_weights.read(version).num_classes == 3
