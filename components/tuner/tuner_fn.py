"""The Tuner's entry point: TFX's `tuner_fn` interface, adapting `fn_args` to the plain search modules."""

from __future__ import annotations

import logging
import os
from typing import Any

import keras_tuner  # type: ignore[import-untyped]
from tfx.components.tuner.component import TunerFnResult

from detx.components.trainer import pretrained
from detx.components.trainer.options import TrainerOptions
from detx.components.tuner import space
from detx.components.tuner.options import OBJECTIVES, TunerOptions
from detx.components.tuner.trials import BaselineFirstOracle, DetectionTuner, TrialRunner

# Progress lines for people: `detx run` shows this logger's messages on the terminal.
PROGRESS = logging.getLogger("detx.progress")

# The custom_config keys that hold the Tuner's own budget; the rest are the Trainer's options.
TUNER_KEYS = ("max_trials", "trial_steps", "objective")


# Called by the DetectionTuner's executor (tuner_fn="detx.components.tuner.tuner_fn.tuner_fn"), or TFX's own Tuner.
def tuner_fn(fn_args: Any) -> TunerFnResult:
    """A KerasTuner search over `space.search_space`, each trial a short run of the Trainer's training.

    `fn_args` is TFX's FnArgs (`train_files`, `eval_files`, `custom_config`,
    `working_dir`), plus `pretrained` and `push_destination` when the
    DetectionTuner's executor built it (TFX's own Tuner has neither: its
    trials then start from `trainer.pretrained`, or from scratch).
    """
    config = dict(fn_args.custom_config or {})
    budget = TunerOptions(**{k: config.pop(k) for k in TUNER_KEYS if k in config})
    options = TrainerOptions.from_custom_config(config, pretrained=getattr(fn_args, "pretrained", "") or "")
    start = pretrained.resolve(
        options.pretrained, getattr(fn_args, "push_destination", ""), options.pretrained_fallback, PROGRESS.info
    )
    examples_dir = os.path.dirname(os.path.dirname(fn_args.train_files[0]))
    runner = TrialRunner(
        examples_dir=examples_dir,
        train_pattern=fn_args.train_files[0],
        eval_pattern=fn_args.eval_files[0],
        options=options,
        trial_steps=budget.trial_steps,
        objective=budget.objective,
        start=start,
        work_dir=os.path.join(fn_args.working_dir, "trials"),
        log=PROGRESS.info,
    )
    oracle = BaselineFirstOracle(
        objective=keras_tuner.Objective(budget.objective, direction=OBJECTIVES[budget.objective]),
        max_trials=budget.max_trials,
        seed=options.seed,
        hyperparameters=space.search_space(options.preset, options.freeze_batchnorm),
        # Only the knobs of the space: a trial must never invent a hyperparameter the Trainer cannot apply.
        allow_new_entries=False,
        tune_new_entries=False,
    )
    PROGRESS.info(
        "tuning: %d trials of %d steps (%s), scored by %s on the eval split",
        budget.max_trials,
        budget.trial_steps,
        ", ".join(space.NAMES),
        budget.objective,
    )
    tuner = DetectionTuner(oracle, runner, directory=fn_args.working_dir, project_name="detx_tuner")
    # verbose 0: KerasTuner's own per-trial tables would reach `detx run`'s terminal; the trials' progress
    # lines above say the same in one line each.
    return TunerFnResult(tuner=tuner, fit_kwargs={"verbose": 0})
