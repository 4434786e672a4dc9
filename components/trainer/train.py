"""Training: the SSD train step, the Zoo's optimizer and schedule, devices, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from detx.components.modeling.config import ModelConfig, TrainConfig
from detx.components.modeling.losses import ssd_losses
from detx.components.modeling.network import DetectorNetwork, build_network, l2_loss

HISTORY_FILENAME = "history.json"


class SSDTrainingModel(keras.Model):
    """Wraps the network with the SSD loss in `train_step`, so `fit` drives it on any strategy."""

    def __init__(self, network: DetectorNetwork, model_config: ModelConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.net = network.model
        self.model_config = model_config
        self._trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "cls_loss", "loc_loss", "reg_loss")}

    def call(self, images: tf.Tensor, training: bool = False) -> Any:
        """Box codes and class logits of normalized images."""
        return self.net(images, training=training)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        """The loss trackers Keras resets each epoch."""
        return list(self._trackers.values())

    def train_step(self, data: Any) -> dict[str, Any]:
        """One SGD step on focal + smooth L1 + L2, normalized as the Zoo does."""
        images, (cls_targets, box_targets, matched) = data
        c = self.model_config
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            codes, logits = self.net(images, training=True)
            cls, loc = ssd_losses(
                cls_targets, box_targets, matched, logits, codes, c.focal_alpha, c.focal_gamma, c.huber_delta
            )
            reg = l2_loss(self.network, c.l2_weight)
            # As the Zoo's model_lib_v2: the replicas' gradients are summed, so each divides its loss.
            loss = (cls + loc + reg) / replicas
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        for name, value in (("loss", cls + loc + reg), ("cls_loss", cls), ("loc_loss", loc), ("reg_loss", reg)):
            self._trackers[name].update_state(value)
        return {name: t.result() for name, t in self._trackers.items()}


def strategy_for_devices() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, else the default (one device)."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def use_mixed_precision_if_gpu() -> bool:
    """Sets Keras's mixed_float16 policy when a GPU is visible; returns whether it did."""
    if tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        return True
    keras.mixed_precision.set_dtype_policy("float32")
    return False


def learning_rate_schedule(train_config: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """The Zoo's cosine schedule with linear warm-up, scaled to the batch size (called with the 0-based step)."""
    base, warm = train_config.scaled_learning_rate()
    warmup = min(train_config.warmup_steps, train_config.train_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=warm,
        decay_steps=max(train_config.train_steps - warmup, 1),
        warmup_target=base,
        warmup_steps=warmup,
    )


def optimizer(train_config: TrainConfig) -> keras.optimizers.Optimizer:
    """SGD with momentum on `learning_rate_schedule`."""
    return keras.optimizers.SGD(learning_rate=learning_rate_schedule(train_config), momentum=train_config.momentum)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        network: the trained network.
        history: per-epoch mean losses (an epoch is `checkpoint_every` steps).
        steps: total steps done, counting any done before a resume.
        resumed_from_step: the step training resumed at (0 for a fresh start).
    """

    network: DetectorNetwork
    history: dict[str, list[float]]
    steps: int
    resumed_from_step: int


class _StepLogger(keras.callbacks.Callback):
    def __init__(self, log: Callable[[str], None], steps_per_epoch: int, epochs: int) -> None:
        super().__init__()
        self._log, self._steps_per_epoch, self._epochs = log, steps_per_epoch, epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        self._log(
            f"step {(epoch + 1) * self._steps_per_epoch}/{self._epochs * self._steps_per_epoch}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items()))
        )


class TrainingDiverged(RuntimeError):
    """The loss stopped being a number; the message gives the learning rate and what to change."""


class _DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first step whose loss is not finite; never lets a non-finite state be checkpointed.

    A diverged network only wastes the rest of the run and the Evaluator's time. The usual
    cause is the Zoo's learning rate on a batch far below its 128 (tensorflow/models#10509).

    Keras 3 hands `on_train_batch_end` the epoch's running means (the trackers'
    results), not the step's own loss. A mean that took in one NaN or Inf stays
    non-finite, so the first bad step shows at that very step (a test injects a
    NaN at the second step of an epoch and checks the step named). The check
    runs before BackupAndRestore's callbacks (it is first in the list) and raises,
    so Keras never reaches the end of that epoch and writes no checkpoint of it.
    At each epoch end it also checks every weight and optimizer slot: a step can
    leave NaN weights behind a finite loss (the loss is computed before the
    update), and a checkpoint of those would poison every resume.
    """

    def __init__(self, train_config: TrainConfig) -> None:
        super().__init__()
        self._config = train_config
        self._schedule = learning_rate_schedule(train_config)
        self._epoch = 0

    def _diverged(self, what: str) -> TrainingDiverged:
        c = self._config
        base, _ = c.scaled_learning_rate()
        return TrainingDiverged(
            f"{what}: training diverged at a peak learning rate of {base:.4g} with batch {c.batch_size}. "
            "Lower the rate: a larger batch keeps the Zoo's rate per example (it is scaled from batch 128), a "
            "warm start takes trainer.warm_start_learning_rate of it, and --freeze-batchnorm steadies very small "
            "batches (tensorflow/models#10509)"
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._epoch = epoch  # global: after a resume Keras starts at the restored epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        saved = self._epoch * self._config.checkpoint_every
        step = saved + batch + 1
        rate = float(self._schedule(step - 1))  # the rate step `step` was taken with
        raise self._diverged(
            f"the loss is {float(loss)} at step {step} of {self._config.train_steps} (learning rate {rate:.4g} "
            "there); " + (f"the last checkpoint is still step {saved}'s" if saved else "no checkpoint was written")
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        step = (epoch + 1) * self._config.checkpoint_every
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise self._diverged(f"the loss is {float(loss)} after step {step}")
        if self._model is None:  # not attached to a model (unit tests of the loss check)
            return
        bad = non_finite_variables([*self.model.weights, *self.model.optimizer.variables])
        if bad:
            raise self._diverged(
                f"{len(bad)} weight(s) hold NaN or Inf after step {step} although the loss was finite "
                f"({', '.join(bad[:3])}); that state was not checkpointed"
            )


def non_finite_variables(variables: list[Any]) -> list[str]:
    """The paths of the floating-point variables holding any NaN or Inf (in the order given)."""
    bad = []
    for v in variables:
        # Keras 3 variables name their dtype as a string ("float32"); tf.Variable as a DType. NumPy, not one
        # eager TensorFlow op per variable: this made the scan of the tiny network 0.6 s on a busy machine.
        if tf.as_dtype(v.dtype).is_floating and not np.isfinite(keras.ops.convert_to_numpy(v)).all():
            bad.append(getattr(v, "path", v.name))
    return bad


def train(
    dataset_fn: Callable[[int], tf.data.Dataset],
    model_config: ModelConfig,
    train_config: TrainConfig,
    num_classes: int,
    run_dir: str,
    initialize: Callable[[DetectorNetwork], None] | None = None,
    log: Callable[[str], None] = print,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainResult:
    """Trains a detector; resumes from `run_dir` if an earlier run of the same job was cut short.

    Args:
        dataset_fn: builds the training dataset for a given per-replica batch size.
        model_config: the architecture.
        train_config: steps, batch, schedule, seed.
        num_classes: foreground classes.
        run_dir: checkpoints (`backup/`) and TensorBoard logs (`logs/`) go here.
        initialize: loads pretrained weights into the fresh network (skipped
            on resume, where the checkpoint has them).
        log: progress lines.
        callbacks: more Keras callbacks (after the checkpointing ones).
    """
    keras.utils.set_random_seed(train_config.seed)
    mixed = use_mixed_precision_if_gpu()
    strategy = strategy_for_devices()
    backup_dir = os.path.join(run_dir, "backup")
    resumed_from = _completed_steps(backup_dir, train_config)
    with strategy.scope():
        network = build_network(model_config, num_classes, freeze_batchnorm=train_config.freeze_batchnorm)
        if initialize is not None and resumed_from == 0:
            initialize(network)
        model = SSDTrainingModel(network, model_config)
        size = model_config.image_size
        model(tf.zeros([1, size, size, 3]))  # BackupAndRestore needs a built model to restore into.
        # XLA speeds training up on GPUs but made CPU steps 5x slower here (docs/benchmarks.md).
        model.compile(optimizer=optimizer(train_config), jit_compile=bool(tf.config.list_physical_devices("GPU")))
        # Slot variables made inside the first traced step make tf.function trace the whole step
        # twice (once to create them, once without); made here, the step is traced once.
        model.optimizer.build(model.trainable_variables)
    epochs = math.ceil(train_config.train_steps / train_config.checkpoint_every)
    per_replica = max(train_config.batch_size // strategy.num_replicas_in_sync, 1)
    dataset = dataset_fn(per_replica * strategy.num_replicas_in_sync)
    log(
        f"training {train_config.train_steps} steps of batch {train_config.batch_size} on "
        f"{strategy.num_replicas_in_sync} device(s){' with mixed precision' if mixed else ''}"
        + (f", resuming at step {resumed_from}" if resumed_from else "")
    )
    history = model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=train_config.checkpoint_every,
        shuffle=False,  # the tf.data pipeline shuffles, with its own seed
        verbose=0,
        callbacks=[
            # First, so a diverged epoch is never checkpointed (a resume would start from it).
            _DivergenceGuard(train_config),
            # Restores weights, optimizer state and the epoch after a crash; kept after success.
            # double_checkpoint keeps the previous checkpoint until the new one is written.
            keras.callbacks.BackupAndRestore(
                backup_dir, save_freq="epoch", double_checkpoint=True, delete_checkpoint=False
            ),
            # After the restore: a checkpoint written before detx checked weights could hold NaN.
            keras.callbacks.LambdaCallback(on_train_begin=lambda _: _check_restored(model, backup_dir, resumed_from)),
            keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), update_freq="epoch"),
            _StepLogger(log, train_config.checkpoint_every, epochs),
            *(callbacks or []),
        ],
    )
    with tf.io.gfile.GFile(os.path.join(run_dir, "train_config.json"), "w") as f:
        f.write(json.dumps({"model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train_config)}))
    with tf.io.gfile.GFile(os.path.join(run_dir, HISTORY_FILENAME), "w") as f:
        f.write(json.dumps({"steps_per_epoch": train_config.checkpoint_every, **history.history}))
    return TrainResult(network, dict(history.history), epochs * train_config.checkpoint_every, resumed_from)


def _check_restored(model: keras.Model, backup_dir: str, resumed_from: int) -> None:
    """Refuses to go on from a restored checkpoint that holds NaN or Inf."""
    if not resumed_from:
        return
    bad = non_finite_variables([*model.weights, *model.optimizer.variables])
    if bad:
        raise TrainingDiverged(
            f"the checkpoint in {backup_dir} (step {resumed_from}) holds NaN or Inf in {len(bad)} weight(s) "
            f"({', '.join(bad[:3])}), so training cannot resume from it: delete {backup_dir} to start this run over"
        )


def _completed_steps(backup_dir: str, train_config: TrainConfig) -> int:
    """Steps a previous attempt finished, from BackupAndRestore's record (0 if none)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not tf.io.gfile.exists(path):
        return 0
    with tf.io.gfile.GFile(path) as f:
        completed_epochs = int(json.load(f).get("epoch", 0))  # Keras records epochs done
    return completed_epochs * train_config.checkpoint_every
