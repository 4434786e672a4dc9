"""The Trainer's settings, as they travel through TFX's `custom_config` dict."""

from __future__ import annotations

import dataclasses
from typing import Any

from detx.components.modeling.config import RESTORE_SCOPES, ModelConfig, TrainConfig, preset


@dataclasses.dataclass(frozen=True)
class TrainerOptions:
    """What the Trainer trains and starts from.

    Attributes:
        preset: "zoo320" (the Model Zoo model) or "tiny" (CPU tests).
        batch_size: overrides the preset's batch size (0 keeps it); the
            learning rate is scaled from the Zoo's batch 128 either way.
        freeze_batchnorm: keep BN fixed (advisable with batches under ~16).
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

    def configs(self, steps: int) -> tuple[ModelConfig, TrainConfig]:
        """The preset's configs with this run's overrides."""
        model_config, train_config = preset(self.preset)
        overrides: dict[str, Any] = {"steps": steps, "seed": self.seed, "freeze_batchnorm": self.freeze_batchnorm}
        if self.batch_size:
            overrides["batch_size"] = self.batch_size
        every = self.checkpoint_every or train_config.checkpoint_every
        overrides["checkpoint_every"] = max(1, min(every, steps))
        return model_config, dataclasses.replace(train_config, **overrides)

    def to_custom_config(self) -> dict[str, Any]:
        """The dict given to the TFX Trainer as `custom_config`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any] | None) -> TrainerOptions:
        """Reads the options back in `run_fn`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (custom_config or {}).items() if k in fields})
