"""The Trainer's settings, as they travel through TFX's `custom_config` dict.

`pretrained` is a KFP run parameter: it reaches the executor only as the
DetectionTrainer's `pretrained` exec property, never inside `custom_config`
(one channel per value: nothing to merge back, nothing to disagree).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from detx.components.modeling.config import RESTORE_SCOPES, ModelConfig, TrainConfig, preset

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
        pretrained: a Model Zoo model directory (`pipeline.config` +
            `checkpoint/`), a Keras MobileNetV2 ImageNet weights file (.h5), or "".
        restore_scope: for Zoo checkpoints: "detection", "detection+box" or "full".
        checkpoint_every: steps between checkpoints (0 keeps the preset's).
    """

    preset: str = "zoo320"
    batch_size: int = 0
    freeze_batchnorm: bool = False
    seed: int = 0
    pretrained: str = ""
    restore_scope: str = "detection"
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        preset(self.preset)  # raises on an unknown name
        if self.restore_scope not in RESTORE_SCOPES:
            raise ValueError(f"unknown restore scope {self.restore_scope!r}; choose one of {', '.join(RESTORE_SCOPES)}")

    def configs(self, train_steps: int) -> tuple[ModelConfig, TrainConfig]:
        """The preset's configs with this run's overrides."""
        model_config, train_config = preset(self.preset)
        overrides: dict[str, Any] = {
            "train_steps": train_steps,
            "seed": self.seed,
            "freeze_batchnorm": self.freeze_batchnorm,
        }
        if self.batch_size:
            overrides["batch_size"] = self.batch_size
        every = self.checkpoint_every or train_config.checkpoint_every
        overrides["checkpoint_every"] = max(1, min(every, train_steps))
        return model_config, dataclasses.replace(train_config, **overrides)

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
