"""NaN/Inf in training: the first non-finite step stops the run by name, and no checkpoint holds a non-finite state."""

import dataclasses
import json
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from detx.components.modeling.config import preset
from detx.components.trainer import data, train
from testing.data import write_examples

MODEL, TRAIN = preset("tiny")
# Three epochs of two steps: a checkpoint after steps 2 and 4.
TRAIN = dataclasses.replace(TRAIN, batch_size=4, train_steps=6, checkpoint_every=2, shuffle_buffer=16)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return write_examples(str(tmp_path_factory.mktemp("ex") / "examples"), 16, seed=3, min_size=48)


def _dataset_fn(examples, config, nan_at_step=None):
    """The real training input; with `nan_at_step` (1-based) that step's images are NaN."""
    pattern = os.path.join(examples, "Split-train", "*")

    def make(batch):
        ds = data.make_dataset(pattern, MODEL, config, batch_size=batch)
        if nan_at_step is None:
            return ds
        poison = tf.constant(nan_at_step - 1, tf.int64)
        return ds.enumerate().map(lambda i, x: (tf.where(i == poison, x[0] * np.nan, x[0]), x[1]))

    return make


def _train(examples, run_dir, config=TRAIN, nan_at_step=None, callbacks=None):
    return train.train(
        _dataset_fn(examples, config, nan_at_step),
        MODEL,
        config,
        3,
        run_dir,
        log=lambda _: None,
        callbacks=callbacks,
    )


def _checkpoint(run_dir):
    """(epochs done, every weight and optimizer slot finite) of BackupAndRestore's checkpoint on disk."""
    backup = os.path.join(run_dir, "backup")
    with open(os.path.join(backup, "training_metadata.json")) as f:
        epochs = json.load(f)["epoch"]
    arrays = []
    with h5py.File(os.path.join(backup, "latest.weights.h5"), "r") as f:
        f.visititems(lambda _, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    floats = [a for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating)]
    assert floats, "the checkpoint holds no weights"
    return epochs, all(np.isfinite(a).all() for a in floats)


def test_non_finite_weights_behind_a_finite_loss_stop_training_before_the_checkpoint():
    # The loss is computed before the update, so a step can leave NaN weights behind a finite loss; the guard
    # checks every weight and optimizer slot at the epoch's end, before BackupAndRestore (which comes after it).
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="head")])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    guard = train._DivergenceGuard(TRAIN)
    guard.set_model(model)
    guard.on_epoch_end(1, {"loss": 0.5})  # all finite: nothing happens
    model.optimizer.variables[-1].assign(np.full(model.optimizer.variables[-1].shape, np.inf, np.float32))
    model.layers[0].kernel.assign([[np.nan], [1.0]])
    with pytest.raises(
        train.TrainingDiverged,
        # Keras numbers its default names per process (sequential_3, sgd_13): the names depend on what ran before.
        match=r"^2 weight\(s\) hold NaN or Inf after step 4 although the loss was finite "
        r"\(sequential(_\d+)?/head/kernel, sgd(_\d+)?/sequential(_\d+)?_head_bias_momentum\); "
        r"that state was not checkpointed: training diverged",
    ):
        guard.on_epoch_end(1, {"loss": 0.5})


def test_no_non_finite_state_is_checkpointed_and_a_rerun_resumes_from_the_last_good_one(examples, tmp_path):
    run_dir = str(tmp_path / "run")
    # A NaN at step 2 of the second epoch (step 4). Keras 3's logs hold the epoch's running mean, so the mean
    # of steps 3 and 4 is NaN at once: the guard names step 4, not the epoch's end.
    with pytest.raises(
        train.TrainingDiverged,
        match=r"^the loss is nan at step 4 of 6 \(learning rate [0-9.e-]+ there\); the last checkpoint is still "
        r"step 2's: training diverged at a peak learning rate of .* with batch 4\. Lower the rate",
    ):
        _train(examples, run_dir, nan_at_step=4)
    assert _checkpoint(run_dir) == (1, True)  # step 2's checkpoint, finite: the NaN epoch was never saved
    # Once the input is sound the same job finishes from that checkpoint, never from a poisoned state.
    resumed = _train(examples, run_dir)
    assert resumed.resumed_from_step == 2 and resumed.steps == 6
    assert len(resumed.history["loss"]) == 2 and all(np.isfinite(resumed.history["loss"]))
    assert _checkpoint(run_dir) == (3, True)
    # A checkpoint poisoned some other way (written by an older detx, copied in) is refused on resume, by name.
    with h5py.File(os.path.join(run_dir, "backup", "latest.weights.h5"), "r+") as f:
        names = []
        f.visititems(lambda n, item: names.append(n) if isinstance(item, h5py.Dataset) and item.ndim == 4 else None)
        f[names[0]][...] = np.nan
    with pytest.raises(
        train.TrainingDiverged, match=r"\(step 6\) holds NaN or Inf in 1 weight\(s\) .* delete .*backup to start"
    ):
        _train(examples, run_dir)


def test_a_learning_rate_far_too_high_stops_training_at_the_first_step_it_ruins(examples, tmp_path):
    # 1e30 scaled from batch 16 to batch 4; the first step's loss is finite, its update is not.
    config = dataclasses.replace(TRAIN, base_learning_rate=1e30, warmup_learning_rate=1e30, train_steps=2)
    with pytest.raises(
        train.TrainingDiverged,
        match=r"^the loss is (nan|inf) at step 2 of 2 \(learning rate 2\.5e\+29 there\); no checkpoint was written: "
        r"training diverged at a peak learning rate of 2\.5e\+29 with batch 4",
    ):
        _train(examples, str(tmp_path / "run"), config=config)
    assert not os.path.exists(tmp_path / "run" / "backup" / "latest.weights.h5")
