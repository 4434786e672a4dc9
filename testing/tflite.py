"""Test and benchmark helpers: a small detector architecture registered as a preset, and noisy-weight exports.

Tests and benchmarks make their TFLite test models the same way through this
module (see testing/__init__.py for why it is not installed).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from detx.components.modeling import config as config_lib

# The tiny preset's code at 64 px with a 32-channel FPN and one tower layer: seconds to train, convert and run.
SMALL_PRESET = "test64"
SMALL_CONFIG = dataclasses.replace(config_lib.preset("tiny")[0], image_size=64, fpn_depth=32, tower_layers=1)


@contextlib.contextmanager
def small_preset_registered() -> Iterator[None]:
    """`test64` among detx's presets while the block runs, so the TFLite loader recognizes its exports."""
    config_lib.PRESETS[SMALL_PRESET] = (SMALL_CONFIG, config_lib.preset("tiny")[1])
    try:
        yield
    finally:
        config_lib.PRESETS.pop(SMALL_PRESET, None)


def export_noisy(export_dir: str, label_map_path: str, seed: int = 0, num_classes: int = 3) -> str:
    """Exports the small architecture with random weights plus noise (a fresh head ties every score).

    Returns:
        `export_dir`, a SavedModel as the Trainer exports it.
    """
    import keras
    import numpy as np

    from detx.components.modeling.network import build_network
    from detx.components.trainer import export

    keras.utils.set_random_seed(seed)
    network = build_network(SMALL_CONFIG, num_classes)
    rng = np.random.default_rng(seed)
    for variable in network.model.weights:
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape).astype(variable.dtype))
    return export.export(network, SMALL_CONFIG, label_map_path, export_dir, batching=None)
