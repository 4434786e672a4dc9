"""The Pusher's numeric check: a model with NaN or Inf in its weights or its answers is not pushed; a sound one is."""

import glob
import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.evaluator import constants as tfx_constants
from tfx.types import standard_artifacts

from detx.components.evaluator.report import EvaluationReport
from detx.components.model_store import ModelStore
from detx.components.pusher import executor, finite
from detx.components.trainer.training_weights import WEIGHTS_DIR
from testing.data import write_examples
from tests.serving.conftest import export_tiny  # the real detector, random weights


def _rewrite_checkpoint(prefix, poison):
    """Rewrites a TensorFlow checkpoint with NaN in the tensors `poison(name, value)` picks; returns their names."""
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(reader.get_variable_to_dtype_map())
    values, poisoned = [], []
    for name in names:
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype == np.float32 and poison(name, value):
            value = np.full_like(value, np.nan)
            poisoned.append(name)
        values.append(value)
    for path in glob.glob(prefix + ".*"):
        os.remove(path)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values)
    return poisoned


class _NaNDetector(tf.Module):
    """Finite weights, NaN answers: `serving_default` scores every image NaN (a broken post-processing)."""

    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(1.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
    def detect(self, input_tensor):
        n = tf.shape(input_tensor)[0]
        return {
            "detection_boxes": tf.zeros([n, 1, 4]),
            "detection_scores": tf.fill([n, 1], np.float32(np.nan)) * self.scale,
            "detection_classes": tf.ones([n, 1]),
            "num_detections": tf.ones([n]),
        }


def _first_kernel():
    """A `poison` that picks the first 4-D tensor (a convolution kernel) only."""
    picked = []

    def poison(name, value):
        if value.ndim == 4 and not picked:
            picked.append(name)
            return True
        return False

    return poison


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A sound tiny detector, the same with NaN in one kernel, and one whose answers alone are NaN."""
    root = tmp_path_factory.mktemp("models")
    good = export_tiny(str(root / "good"))
    bad_weight = str(root / "bad_weight")
    shutil.copytree(good, bad_weight)
    prefix = os.path.join(bad_weight, "variables", "variables")
    poisoned = _rewrite_checkpoint(prefix, _first_kernel())
    nan_answers = str(root / "nan_answers")
    module = _NaNDetector()
    tf.saved_model.save(module, nan_answers, signatures={"serving_default": module.detect})
    return {"good": good, "bad_weight": bad_weight, "nan_answers": nan_answers, "poisoned": poisoned}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("examples") / "examples")
    write_examples(uri, 7, splits={"train": 2, "eval": 5})  # the check runs the first 4 eval examples
    return uri


def _push(tmp_path, model_dir, examples_uri, caplog):
    """Runs the Pusher's executor on a blessed `model_dir`; returns (its record, its progress lines)."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    shutil.copytree(model_dir, os.path.join(model.uri, "Format-Serving"))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    blessing.set_int_custom_property(tfx_constants.ARTIFACT_PROPERTY_BLESSED_KEY, 1)
    blessing.set_string_custom_property(tfx_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    EvaluationReport(
        blessed=True,
        reasons=[],
        metrics={"map": 0.5, "map_50": 0.8},
        baseline_version=None,
        baseline_path=None,
        baseline_metrics={},
        min_map_50=0.3,
        max_map_50_drop=0.01,
    ).write(blessing.uri)
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = '["train", "eval"]'
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="detx.progress"):
        executor.Executor().Do(
            {"model": [model], "model_blessing": [blessing], "examples": [examples]},
            {"pushed_model": [pushed]},
            {executor.PUSH_DESTINATION: str(tmp_path / "dest")},
        )
    with open(os.path.join(pushed.uri, executor.PUSH_REPORT_FILENAME)) as f:
        record = json.load(f)
    assert pushed.get_int_custom_property(executor.PUSHED) == int(record["pushed"])
    return record, [r.getMessage() for r in caplog.records if r.name == "detx.progress"]


def test_a_sound_model_is_checked_and_pushed(tmp_path, models, examples, caplog):
    record, lines = _push(tmp_path, models["good"], examples, caplog)
    assert record["pushed"] and record["version"] == 1
    check = record["finite"]
    assert check["finite"] and check["tensors"] > 100 and check["requests"] == 4 and check["notes"] == []
    assert f"numeric check: {check['tensors']} weight tensors and 4 answers on the eval sample are finite" in lines


def test_a_nan_weight_is_not_pushed_and_the_record_names_it_and_the_fix(tmp_path, models, examples, caplog):
    record, lines = _push(tmp_path, models["bad_weight"], examples, caplog)
    assert not record["pushed"] and ModelStore(str(tmp_path / "dest")).versions() == []
    first = models["poisoned"][0]
    assert record["finite"]["bad_tensors"][0] == f"variables/variables:{first}"
    assert record["reason"].startswith(
        f"the model holds NaN or Inf in {len(models['poisoned'])} of {record['finite']['tensors']} weight tensors "
        f"(variables/variables:{first}"
    )
    assert record["reason"].endswith(
        "training diverged without stopping; retrain with a lower learning rate (docs/training.md, 'NaN and Inf'), "
        "nothing pushed"
    )
    assert f"not pushing: {record['reason']}" in lines


def test_nan_answers_on_the_eval_sample_are_not_pushed(tmp_path, models, examples, caplog):
    record, _ = _push(tmp_path, models["nan_answers"], examples, caplog)
    assert not record["pushed"] and record["finite"]["bad_tensors"] == []
    assert record["reason"].startswith(
        "the model holds NaN or Inf in 4 of 4 answers on the eval sample (signature 'serving_default': "
        "detection_scores, signature 'serving_default': detection_scores, signature 'serving_default': "
        "detection_scores and 1 more): training diverged"
    )
    assert record["finite"]["notes"] == []


def test_nan_in_the_training_weights_a_warm_start_would_read_is_found(tmp_path, models):
    model_dir = str(tmp_path / "model")
    shutil.copytree(models["good"], model_dir)
    os.makedirs(os.path.join(model_dir, WEIGHTS_DIR))
    prefix = os.path.join(model_dir, WEIGHTS_DIR, "weights")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=["class_head/bias", "class_head/kernel"],
        shape_and_slices=["", ""],
        tensors=[np.zeros(3, np.float32), np.array([[1.0, np.inf]], np.float32)],
    )
    check = finite.check(model_dir, [])
    assert check.bad_tensors == ["assets.extra/detx_training_weights/weights:class_head/kernel"]
    assert check.requests == 0 and check.notes == ["outputs: no eval examples to run"]
    assert "weight tensors (assets.extra/detx_training_weights/weights:class_head/kernel)" in check.refusal()


def test_a_model_that_cannot_be_read_is_reported_as_not_checked(tmp_path, fake_saved_model):
    check = finite.check(fake_saved_model(str(tmp_path / "fake")), [b"anything"])
    assert check.finite and check.tensors == 0
    assert check.notes[0].startswith("weights at variables/variables unreadable (")
    assert check.notes[1:] == ["no weights were read; the InfraValidator judges whether the model loads"]
