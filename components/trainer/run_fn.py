"""The TFX Trainer's entry point: adapts `fn_args` and calls the plain training modules."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import tensorflow as tf

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.model_card.facts import training_device, write_training_facts
from detx.components.trainer import data, export, pretrained, train, training_weights, warm_start
from detx.components.trainer.options import TrainerOptions
from detx.components.tuner import space

# Progress lines for people: `detx run` shows this logger's messages on the terminal.
PROGRESS = logging.getLogger("detx.progress")


# Called by the TFX Trainer (run_fn="detx.components.trainer.run_fn.run_fn").
def run_fn(fn_args: Any) -> None:
    """Trains on the train split and exports the SavedModel to `fn_args.serving_model_dir`.

    `fn_args` is the DetectionTrainer executor's: TFX's FnArgs with this run's
    `train_steps`, `pretrained` and `push_destination` (see executor.py), and
    TFX's `hyperparameters` when a Tuner ran (applied by `TrainerOptions.configs`).
    """
    options = TrainerOptions.from_custom_config(fn_args.custom_config, pretrained=fn_args.pretrained)
    examples_dir = os.path.dirname(os.path.dirname(fn_args.train_files[0]))
    label_map_path = os.path.join(examples_dir, LABEL_MAP_FILENAME)
    label_map = LabelMap.read(label_map_path)
    start = pretrained.resolve(options.pretrained, fn_args.push_destination, options.pretrained_fallback, PROGRESS.info)
    hyperparameters = getattr(fn_args, "hyperparameters", None)
    model_config, train_config = options.configs(
        fn_args.train_steps, warm_start=start.warm, hyperparameters=hyperparameters
    )
    tuned = space.values_of(hyperparameters)
    if tuned:
        PROGRESS.info("hyperparameters from the Tuner: %s", ", ".join(f"{k} {v}" for k, v in sorted(tuned.items())))
    new_classes: list[str] = []
    if start.source is not None:
        # Before any training: a class the starting model knows but this data lacks fails the run here.
        new_classes = warm_start.new_classes(start.source, label_map)
        PROGRESS.info(
            "warm start from %s: %d of %d steps (trainer.warm_start_steps %g), warm-up %d, peak learning rate %.4g "
            "(trainer.warm_start_learning_rate %g of the preset's)",
            start.source.name(),
            train_config.train_steps,
            fn_args.train_steps,
            options.warm_start_steps,
            min(train_config.warmup_steps, train_config.train_steps),
            train_config.scaled_learning_rate()[0],
            options.warm_start_learning_rate,
        )
    started = time.monotonic()
    result = train.train(
        lambda batch: data.make_dataset(fn_args.train_files, model_config, train_config, batch_size=batch),
        model_config,
        train_config,
        label_map.num_classes,
        fn_args.model_run_dir,
        initialize=pretrained.start_initializer(
            start, options.restore_scope, label_map, model_config, log=PROGRESS.info
        ),
        log=PROGRESS.info,
    )
    duration = time.monotonic() - started
    # Saving a SavedModel leaves the absl logger at WARNING: TensorFlow's
    # AutoTrackable quiets absl while it lists attributes, then "restores"
    # absl's verbosity flag (WARNING when flags were never parsed) rather than
    # the level it found. That would hide TFX's progress lines from here on.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    try:
        export.export(result.network, model_config, label_map_path, fn_args.serving_model_dir)
    finally:
        absl_logger.setLevel(level)
    # The served graph is folded (not trainable); these let a later run start from this model.
    training_weights.write(result.network, model_config, fn_args.serving_model_dir)
    # For the model card: the facts travel inside the model, so every push carries its own.
    losses = result.history.get("loss", [])
    write_training_facts(
        fn_args.serving_model_dir,
        {
            "preset": options.preset,
            "train_steps": train_config.train_steps,
            "resumed_from_step": result.resumed_from_step,
            **start.facts(new_classes),
            "warmup_steps": min(train_config.warmup_steps, train_config.train_steps),
            "learning_rate": train_config.scaled_learning_rate()[0],
            "device": training_device(),
            "batch_size": train_config.batch_size,
            "duration_seconds": round(duration, 1),
            "final_loss": float(losses[-1]) if losses else None,
            "tensorflow_version": tf.__version__,
            # Lineage of the tuning: the space searched and the values used (None: no Tuner, or it was off).
            "tuning": {"space": space.space_summary(hyperparameters), "values": tuned} if tuned else None,
        },
    )
    PROGRESS.info("exported the detector to %s", fn_args.serving_model_dir)
