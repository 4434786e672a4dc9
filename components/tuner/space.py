"""The Tuner's search space, and the one mapping from a hyperparameter's name to the Trainer's configs.

Four knobs that matter when fine-tuning a detector on a small batch:

- `learning_rate_scale`: a multiplier of the preset's peak and warm-up
  learning rates (already scaled to the batch size). The Zoo's rate on a batch
  it was not tuned for diverges (tensorflow/models#10509); a lower one may only
  learn slowly.
- `warmup_fraction`: the linear warm-up's length as a fraction of the training
  steps, so a short trial and the long training it stands for warm up alike.
- `batchnorm`: "frozen" (statistics fixed, gamma and beta trained, as the OD
  API does for small batches) or the moving averages' momentum ("0.9",
  "0.99", "0.997"; a string, since KerasTuner's Choice holds one type).
- `augment`: the Zoo's random flip and crop on or off (components/trainer/data.py
  has no finer strength than this).

Values travel as a KerasTuner `HyperParameters` config (`{"space": [...],
"values": {...}}`), the file TFX's Tuner writes and TFX's Trainer reads into
`fn_args.hyperparameters`. `apply` is the only code that turns them into
config fields: the Tuner's trials and the Trainer both call it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from detx.components.modeling.config import ModelConfig, TrainConfig, preset

if TYPE_CHECKING:
    import keras_tuner  # type: ignore[import-untyped]  # no stubs, and pyproject.toml does not list it

LEARNING_RATE_SCALE = "learning_rate_scale"
WARMUP_FRACTION = "warmup_fraction"
BATCHNORM = "batchnorm"
AUGMENT = "augment"
NAMES = (LEARNING_RATE_SCALE, WARMUP_FRACTION, BATCHNORM, AUGMENT)

LEARNING_RATE_SCALES = (0.1, 0.3, 1.0, 2.0)
WARMUP_FRACTIONS = (0.02, 0.1, 0.25)
FROZEN = "frozen"
BN_MOMENTUMS = ("0.9", "0.99", "0.997")


def _nearest(choices: tuple[float, ...], value: float) -> float:
    return min(choices, key=lambda c: abs(c - value))


def search_space(preset_name: str, freeze_batchnorm: bool) -> keras_tuner.HyperParameters:
    """The search space; each knob's default is what the Trainer would use untuned.

    The defaults make a trial with no choices made the untuned baseline: scale
    1, the preset's own warm-up share of its schedule (tiny: 100 of 800 steps,
    nearest choice 0.1; zoo320: 1,000 of 50,000, 0.02), its BN momentum or
    frozen BN as the options say, and its augmentation.

    Args:
        preset_name: the Trainer's preset.
        freeze_batchnorm: the Trainer's `freeze_batchnorm` option.
    """
    # Imported here: the Trainer's options (and so the CLI) import this module, and KerasTuner imports Keras.
    import keras_tuner

    model_config, train_config = preset(preset_name)
    hp = keras_tuner.HyperParameters()
    hp.Choice(LEARNING_RATE_SCALE, list(LEARNING_RATE_SCALES), default=1.0)
    share = train_config.warmup_steps / train_config.train_steps
    hp.Choice(WARMUP_FRACTION, list(WARMUP_FRACTIONS), default=_nearest(WARMUP_FRACTIONS, share))
    momentum = str(model_config.bn_momentum)
    bn_choices = [FROZEN, *BN_MOMENTUMS] if momentum in BN_MOMENTUMS else [FROZEN, *BN_MOMENTUMS, momentum]
    hp.Choice(BATCHNORM, bn_choices, default=FROZEN if freeze_batchnorm else momentum)
    hp.Boolean(AUGMENT, default=train_config.augment)
    return hp


def values_of(hyperparameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The chosen values of a HyperParameters config (TFX's `fn_args.hyperparameters`); {} for none.

    Raises:
        ValueError: a value names no knob of this space (a file from another tuner).
    """
    values = dict((hyperparameters or {}).get("values") or {})
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
        raise ValueError(
            f"the hyperparameters name {', '.join(unknown)}, which the detx Trainer does not know; "
            f"it applies {', '.join(NAMES)} (feed it the DetectionTuner's best_hyperparameters)"
        )
    return values


def space_summary(hyperparameters: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """Each knob's choices from a HyperParameters config, for the model card and lineage."""
    out: dict[str, list[Any]] = {}
    for entry in (hyperparameters or {}).get("space") or []:
        config = entry.get("config", {})
        if entry.get("class_name") == "Boolean":
            out[config["name"]] = [False, True]
        elif "values" in config:
            out[config["name"]] = list(config["values"])
    return out


def apply(
    values: Mapping[str, Any], model_config: ModelConfig, train_config: TrainConfig
) -> tuple[ModelConfig, TrainConfig]:
    """The configs with the chosen values applied (knobs absent from `values` keep the configs' own).

    Applied last, over the preset, the options and a warm start's schedule:
    `learning_rate_scale` multiplies the rates those gave, and
    `warmup_fraction` is a share of the steps this run trains.
    """
    model_overrides: dict[str, Any] = {}
    train_overrides: dict[str, Any] = {}
    if LEARNING_RATE_SCALE in values:
        scale = float(values[LEARNING_RATE_SCALE])
        train_overrides["base_learning_rate"] = train_config.base_learning_rate * scale
        train_overrides["warmup_learning_rate"] = train_config.warmup_learning_rate * scale
    if WARMUP_FRACTION in values:
        train_overrides["warmup_steps"] = round(train_config.train_steps * float(values[WARMUP_FRACTION]))
    if BATCHNORM in values:
        frozen = values[BATCHNORM] == FROZEN
        train_overrides["freeze_batchnorm"] = frozen
        if not frozen:
            model_overrides["bn_momentum"] = float(values[BATCHNORM])
    if AUGMENT in values:
        train_overrides["augment"] = bool(values[AUGMENT])
    return dataclasses.replace(model_config, **model_overrides), dataclasses.replace(train_config, **train_overrides)
