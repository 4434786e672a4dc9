"""The search: each trial is a short run of the Trainer's own `train`, scored on the eval split.

A KerasTuner `BaseTuner` whose `run_trial` trains with `train.train` (the
Trainer's loop, not a second one) on configs built exactly as the Trainer
builds them (`TrainerOptions.configs`, which applies the values through
`space.apply`), then scores the network in process: COCO mAP@0.5 with
pycocotools (`evaluation.coco_metrics.evaluate`, as bench/warm_start.py does)
or the SSD loss (`modeling.losses.ssd_losses`, the loss training minimizes).
The first trial is always the untuned baseline (every knob at its default), so
the search can say whether tuning beat it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner  # type: ignore[import-untyped]
from keras_tuner.engine import base_tuner  # type: ignore[import-untyped]
from keras_tuner.engine import trial as trial_module

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.modeling.config import ModelConfig, TrainConfig
from detx.components.modeling.losses import ssd_losses
from detx.components.modeling.network import DetectorNetwork
from detx.components.trainer import data, export, pretrained, train
from detx.components.trainer.options import TrainerOptions
from detx.components.tuner.options import OBJECTIVES

# What a diverged trial scores: the worst value of each objective.
DIVERGED = {"map_50": 0.0, "eval_loss": math.inf}


class BaselineFirstOracle(keras_tuner.oracles.RandomSearchOracle):
    """Random search whose first trial is the defaults: the untuned baseline every other trial is compared with."""

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        """The defaults for the first trial, random unseen values after (KerasTuner's RandomSearch)."""
        if not self.trials:
            return {
                "status": trial_module.TrialStatus.RUNNING,
                "values": {hp.name: hp.default for hp in self.hyperparameters.space},
            }
        return dict(super().populate_space(trial_id))


@dataclasses.dataclass
class TrialRunner:
    """Trains and scores one set of values.

    Attributes:
        examples_dir: the Examples artifact (its label map is beside the splits).
        train_pattern, eval_pattern: the splits' TFRecord globs.
        options: the Trainer's options (preset, batch size, seed, ...).
        trial_steps: steps per trial.
        objective: a key of `options.OBJECTIVES`.
        start: where the Trainer starts from (trials start there too).
        work_dir: each trial's checkpoints and logs go under here.
        log: progress lines.
    """

    examples_dir: str
    train_pattern: str
    eval_pattern: str
    options: TrainerOptions
    trial_steps: int
    objective: str
    start: pretrained.StartingPoint
    work_dir: str
    log: Callable[[str], None] = print
    _eval_records: list[bytes] | None = None

    def __call__(self, values: dict[str, Any], trial_id: str) -> float:
        """The objective after `trial_steps` with `values`; its worst value when training diverged."""
        label_map_path = os.path.join(self.examples_dir, LABEL_MAP_FILENAME)
        label_map = LabelMap.read(label_map_path)
        model_config, train_config = self.options.configs(
            self.trial_steps, warm_start=self.start.warm, hyperparameters={"values": values}
        )
        # Each trial builds a fresh network: without this, Keras's graph keeps every earlier one.
        keras.backend.clear_session()
        try:
            result = train.train(
                lambda batch: data.make_dataset(self.train_pattern, model_config, train_config, batch_size=batch),
                model_config,
                train_config,
                label_map.num_classes,
                os.path.join(self.work_dir, f"trial_{trial_id}"),
                initialize=pretrained.start_initializer(
                    self.start, self.options.restore_scope, label_map, model_config, log=lambda _: None
                ),
                log=lambda _: None,
            )
        except train.TrainingDiverged as e:
            self.log(f"trial {trial_id} diverged: {str(e).split(':')[0]}")
            return DIVERGED[self.objective]
        if self.objective == "eval_loss":
            return eval_loss(result.network, model_config, train_config, self.eval_pattern)
        if self._eval_records is None:
            self._eval_records = read_examples(self.eval_pattern)
        # The network as trained, unfolded and unbatched: what export would serve, to float rounding.
        module = export.DetectorModule(result.network, model_config, label_map_path, None, fold_batchnorm=False)
        return float(evaluate(module.detect_examples, self._eval_records, label_map.num_classes).map_50)


def eval_loss(network: DetectorNetwork, model_config: ModelConfig, train_config: TrainConfig, pattern: str) -> float:
    """The SSD loss (classification + localization, no L2) per eval example, in inference mode; inf if not finite."""
    c = model_config
    total, count = 0.0, 0
    for images, (cls_targets, box_targets, matched) in data.make_dataset(pattern, c, train_config, training=False):
        codes, logits = network.model(images, training=False)
        cls, loc = ssd_losses(
            cls_targets, box_targets, matched, logits, codes, c.focal_alpha, c.focal_gamma, c.huber_delta
        )
        size = int(images.shape[0])
        total, count = total + float(cls + loc) * size, count + size
    loss = total / max(count, 1)
    return loss if math.isfinite(loss) else math.inf


class DetectionTuner(base_tuner.BaseTuner):
    """KerasTuner's loop over `TrialRunner`.

    The best values are the baseline's unless a trial beat it: the oracle's
    `get_best_trials` sorts stably and the baseline is the first trial, so a tie keeps it.
    """

    def __init__(self, oracle: keras_tuner.Oracle, runner: TrialRunner, directory: str, project_name: str) -> None:
        super().__init__(oracle, directory=directory, project_name=project_name, overwrite=True)
        self._runner = runner

    def run_trial(self, trial: trial_module.Trial, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Trains and scores one trial, with a progress line."""
        number = len(self.oracle.trials)
        values = dict(trial.hyperparameters.values)
        began = time.monotonic()
        score = self._runner(values, trial.trial_id)
        what = "the untuned baseline" if number == 1 else ", ".join(f"{k} {v}" for k, v in sorted(values.items()))
        self._runner.log(
            f"trial {number}/{self.oracle.max_trials} ({what}): {self._runner.objective} {score:.4g} "
            f"({time.monotonic() - began:.0f} s)"
        )
        return {self._runner.objective: score}


@dataclasses.dataclass(frozen=True)
class SearchSummary:
    """What the search found.

    Attributes:
        objective: what trials were scored by (a key of `options.OBJECTIVES`).
        baseline: the untuned baseline's score (None if it did not complete).
        best: the best trial's score.
        best_values: the values chosen.
        trials: trials completed.
    """

    objective: str
    baseline: float | None
    best: float
    best_values: dict[str, Any]
    trials: int

    @property
    def beat_baseline(self) -> bool:
        """Whether a tuned trial scored above the untuned baseline."""
        if self.baseline is None:
            return True
        return self.best > self.baseline if OBJECTIVES[self.objective] == "max" else self.best < self.baseline

    def line(self) -> str:
        """One line for the run's progress."""
        if self.baseline is None:
            return f"tuning: the baseline trial failed; best {self.objective} {self.best:.4g} of {self.trials} trial(s)"
        if not self.beat_baseline:
            return (
                f"tuning did not beat the untuned baseline ({self.objective} {self.baseline:.4g}, best of "
                f"{self.trials} trials): the Trainer trains with the baseline's values"
            )
        chosen = ", ".join(f"{k} {v}" for k, v in sorted(self.best_values.items()))
        return (
            f"tuning beat the untuned baseline: {self.objective} {self.best:.4g} vs {self.baseline:.4g} "
            f"after {self.trials} trials; the Trainer uses {chosen}"
        )


def summarize(tuner: base_tuner.BaseTuner) -> SearchSummary:
    """The baseline (the first trial) against the best completed trial."""
    objective = tuner.oracle.objective.name
    completed = [t for t in tuner.oracle.trials.values() if t.status == trial_module.TrialStatus.COMPLETED]
    if not completed:
        raise RuntimeError("no tuning trial completed; the log of each is under the Tuner's working directory")
    first = next(iter(tuner.oracle.trials.values()))
    best = tuner.oracle.get_best_trials(1)[0]
    baseline = float(first.score) if first.status == trial_module.TrialStatus.COMPLETED else None
    return SearchSummary(objective, baseline, float(best.score), dict(best.hyperparameters.values), len(completed))
