"""The DetectionTuner's executor, run for real: trials train with the Trainer's loop and are scored by pycocotools.

The constructed case: a preset whose peak learning rate is 100 times the tiny
preset's. Its untuned baseline (scale 1) cannot learn within the budget (it
diverges or ends far off), and a lower scale in the space brings the rate back;
the search must find one and say it beat the baseline. Trials are scored by
the eval loss: after a few steps mAP@0.5 is near 0 whatever the settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import pytest
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from detx.components.modeling import config as modeling_config
from detx.components.trainer.options import TrainerOptions
from detx.components.tuner import space
from detx.components.tuner.executor import BEST_HYPERPARAMETERS_FILE, TUNER_RESULTS_FILE, Executor
from detx.components.tuner.options import TunerOptions
from testing.data import write_examples

HOT = "tiny_hot_lr"
HOT_BASE = "tiny"  # the hot preset is tiny with another learning rate: the same search-space defaults
# Two trials: the baseline and one random choice (seeded by TrainerOptions.seed, so the same one each run).
TRIALS = 2
# Enough steps for the hot baseline to end far off on any CPU's numerics: at 8 steps it ended below a
# 0.1-scale trial on an AVX-512 Xeon with oneDNN (eval_loss 1.66 vs 1.80).
STEPS = 20


def _hot_preset() -> tuple[modeling_config.ModelConfig, modeling_config.TrainConfig]:
    model_config, train_config = modeling_config.preset("tiny")
    return model_config, dataclasses.replace(
        train_config,
        base_learning_rate=train_config.base_learning_rate * 100,
        warmup_learning_rate=train_config.warmup_learning_rate * 100,
    )


def _exec_properties(tuning: str, trainer_options: TrainerOptions, budget: TunerOptions) -> dict:
    return {
        "tuner_fn": "detx.components.tuner.tuner_fn.tuner_fn",
        "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
        "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
        "custom_config": json.dumps({**trainer_options.to_custom_config(), **budget.to_custom_config()}),
        "tuning": tuning,
        "pretrained": "",
        "push_destination": "",
    }


def _artifacts(root) -> tuple[dict, dict, standard_artifacts.HyperParameters, standard_artifacts.TunerResults]:
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    best, results = standard_artifacts.HyperParameters(), standard_artifacts.TunerResults()
    best.uri, results.uri = str(root / "best"), str(root / "results")
    for a in (best, results):
        os.makedirs(a.uri)
    return {"examples": [examples]}, {"best_hyperparameters": [best], "tuner_results": [results]}, best, results


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One real search on the constructed case: (best hyperparameters, trial results, progress lines)."""
    root = tmp_path_factory.mktemp("tuner")
    write_examples(str(root / "examples"), 24, seed=5, splits={"train": 16, "eval": 8})
    inputs, outputs, best, results = _artifacts(root)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    progress = logging.getLogger("detx.progress")
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(modeling_config.PRESETS, HOT, _hot_preset())
            options = TrainerOptions(preset=HOT, batch_size=4, seed=1)
            executor = Executor(Executor.Context(tmp_dir=str(root / "tmp"), unique_id="1"))
            executor.Do(
                inputs, outputs, _exec_properties("on", options, TunerOptions(True, TRIALS, STEPS, "eval_loss"))
            )
    finally:
        progress.removeHandler(handler)
    with open(os.path.join(best.uri, BEST_HYPERPARAMETERS_FILE)) as f:
        best_config = json.load(f)
    with open(os.path.join(results.uri, TUNER_RESULTS_FILE)) as f:
        trial_results = json.load(f)
    return best_config, trial_results, lines


def test_the_search_writes_tfx_files_a_tfx_trainer_reads(tuned, tmp_path):
    best_config, trial_results, _ = tuned
    assert set(best_config["values"]) == set(space.NAMES)
    assert {e["config"]["name"] for e in best_config["space"]} == set(space.NAMES)
    assert 1 <= len(trial_results) <= TRIALS
    assert all(set(space.NAMES) <= set(r) and "score" in r for r in trial_results)
    # Trial 1 is the untuned baseline: every knob at the default the search space gives it.
    defaults = space.search_space(HOT_BASE, freeze_batchnorm=False).values
    assert any(all(r[k] == v for k, v in defaults.items()) for r in trial_results)


def test_on_the_constructed_case_the_tuned_values_beat_the_untuned_baseline(tuned):
    best_config, trial_results, lines = tuned
    baseline_line = next(line for line in lines if "the untuned baseline)" in line)
    baseline = float(baseline_line.split("eval_loss ")[1].split()[0])
    best = min(r["score"] for r in trial_results)
    assert best < baseline, lines
    assert best_config["values"][space.LEARNING_RATE_SCALE] < 1.0
    assert any(line.startswith("tuning beat the untuned baseline") for line in lines), lines


def test_off_writes_empty_outputs_at_once_and_the_trainer_applies_nothing(tmp_path):
    inputs, outputs, best, _ = _artifacts(tmp_path)
    Executor().Do(inputs, outputs, _exec_properties("off", TrainerOptions(preset="tiny"), TunerOptions()))
    assert os.listdir(best.uri) == [BEST_HYPERPARAMETERS_FILE]
    config = json.loads((tmp_path / "best" / BEST_HYPERPARAMETERS_FILE).read_text())
    assert json.loads((tmp_path / "results" / TUNER_RESULTS_FILE).read_text()) == []
    options = TrainerOptions(preset="tiny")
    assert options.configs(50, hyperparameters=config) == options.configs(50)


def test_a_bad_tuning_value_is_refused_with_the_choices(tmp_path):
    inputs, outputs, _, _ = _artifacts(tmp_path)
    with pytest.raises(ValueError, match=r"the tuning run parameter is 'yes'; set it to one of off, on"):
        Executor().Do(inputs, outputs, _exec_properties("yes", TrainerOptions(preset="tiny"), TunerOptions()))


def test_the_file_names_are_tfxs_own():
    from tfx.components.tuner import executor as tfx_executor

    assert BEST_HYPERPARAMETERS_FILE == tfx_executor._DEFAULT_BEST_HP_FILE_NAME
    assert TUNER_RESULTS_FILE == tfx_executor._DEFAULT_TUNER_RESULTS_FILE_NAME
