"""The Trainer's settings, as they travel through TFX's `custom_config` dict.

`pretrained` is a KFP run parameter: it reaches the executor only as the
DetectionTrainer's `pretrained` exec property, never inside `custom_config`
(one channel per value: nothing to merge back, nothing to disagree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from detx.components.modeling.config import RESTORE_SCOPES, ModelConfig, TrainConfig, preset
from detx.components.tuner import space

# `pretrained`'s keyword for the version served from the push destination (components/trainer/pretrained.py).
PRODUCTION = "production"

# The fields that are run parameters: each is an exec property of its own, so `custom_config` leaves it out.
RUN_SETTINGS = ("pretrained",)


@dataclasses.dataclass(frozen=True)
class TrainerOptions:
    """What the Trainer trains and starts from.

    Attributes:
        preset: "zoo320" (the Model Zoo model) or "tiny" (CPU tests).
        batch_size: overrides the preset's batch size (0 keeps it); the
            learning rate is scaled from the Zoo's batch 128 either way.
        freeze_batchnorm: BN statistics fixed, gamma and beta trained (advisable with batches under ~16).
        seed: seeds data order, augmentation and initialization.
        pretrained: "production" (the version served from the push destination: a warm
            start), an exported detx model directory (a warm start from it), a Model Zoo
            model directory (`pipeline.config` + `checkpoint/`), a Keras MobileNetV2
            ImageNet weights file (.h5), or "".
        restore_scope: for Zoo checkpoints: "detection", "detection+box" or "full".
        checkpoint_every: steps between checkpoints (0 keeps the preset's).
        pretrained_fallback: what "production" starts from when no served version can be
            used (nothing served yet, or one without training weights): a Zoo model
            directory, an ImageNet .h5, or "" (from scratch).
        warm_start_steps: a warm start trains this fraction of `train_steps`, and of the
            preset's warm-up: the weights already detect the known classes. On the ct demo's
            drift a warm start passed production within 25 of its 100 steps, where training
            from scratch needed 225 to over 400 (docs/benchmarks.md, "Warm start vs from scratch").
        warm_start_learning_rate: a warm start's peak and warm-up learning rates, as a
            fraction of the preset's (already scaled to the batch size). 1 by default: a
            quarter or half of the rate scored lower after the same steps, on the new data and
            on production's own (measured, same benchmark). At most 1: the preset's rate is
            already the Zoo's scaled to the batch, and the Zoo's rate on a batch it was not
            scaled to diverges (tensorflow/models#10509).
    """

    preset: str = "zoo320"
    batch_size: int = 0
    freeze_batchnorm: bool = False
    seed: int = 0
    pretrained: str = ""
    restore_scope: str = "detection"
    checkpoint_every: int = 0
    pretrained_fallback: str = ""
    warm_start_steps: float = 0.25
    warm_start_learning_rate: float = 1.0

    def __post_init__(self) -> None:
        preset(self.preset)  # raises on an unknown name
        if self.restore_scope not in RESTORE_SCOPES:
            raise ValueError(f"unknown restore scope {self.restore_scope!r}; choose one of {', '.join(RESTORE_SCOPES)}")
        if self.pretrained_fallback == PRODUCTION:
            raise ValueError(
                "trainer.pretrained_fallback is what 'production' falls back to: give a Model Zoo directory, "
                "an ImageNet .h5 or '' (from scratch), not 'production'"
            )
        for name in ("warm_start_steps", "warm_start_learning_rate"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"trainer.{name} is a fraction of the preset's schedule in (0, 1], got {value}")

    def configs(
        self, train_steps: int, warm_start: bool = False, hyperparameters: Mapping[str, Any] | None = None
    ) -> tuple[ModelConfig, TrainConfig]:
        """The preset's configs with this run's overrides.

        Args:
            train_steps: steps to train.
            warm_start: shortens the schedule (see the fields).
            hyperparameters: the Tuner's values (a KerasTuner HyperParameters config, as TFX
                hands them to `run_fn`), applied last by `tuner.space.apply`; None for none.
        """
        model_config, train_config = preset(self.preset)
        overrides: dict[str, Any] = {
            "train_steps": train_steps,
            "seed": self.seed,
            "freeze_batchnorm": self.freeze_batchnorm,
        }
        if self.batch_size:
            overrides["batch_size"] = self.batch_size
        if warm_start:
            train_steps = max(1, round(train_steps * self.warm_start_steps))
            overrides["train_steps"] = train_steps
            overrides["warmup_steps"] = round(train_config.warmup_steps * self.warm_start_steps)
            overrides["base_learning_rate"] = train_config.base_learning_rate * self.warm_start_learning_rate
            overrides["warmup_learning_rate"] = train_config.warmup_learning_rate * self.warm_start_learning_rate
        every = self.checkpoint_every or train_config.checkpoint_every
        overrides["checkpoint_every"] = max(1, min(every, train_steps))
        return space.apply(
            space.values_of(hyperparameters), model_config, dataclasses.replace(train_config, **overrides)
        )

    def to_custom_config(self) -> dict[str, Any]:
        """The dict given to the TFX Trainer as `custom_config`: every field but the `RUN_SETTINGS`."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUN_SETTINGS}

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any] | None, pretrained: str) -> TrainerOptions:
        """Reads the options back in `run_fn`, with `pretrained` from its own exec property.

        Raises:
            ValueError: `custom_config` carries a run setting (it has exactly one channel).
        """
        values = dict(custom_config or {})
        carried = sorted(set(values) & set(RUN_SETTINGS))
        if carried:
            raise ValueError(f"custom_config must not carry the run setting(s) {', '.join(carried)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields}, pretrained=pretrained)
