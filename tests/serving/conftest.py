"""Serving test fixtures: tiny detectors exported by detx (server_process.py runs `detx serve`)."""

from __future__ import annotations

import os

import pytest


def export_tiny(export_dir: str, seed: int = 0) -> str:
    """Exports the tiny preset with random weights (serving does not care how well it detects)."""
    import keras

    from detx.components.data.synth import label_map
    from detx.components.modeling.config import preset
    from detx.components.modeling.network import build_network
    from detx.components.trainer import export

    keras.utils.set_random_seed(seed)
    model_config, _ = preset("tiny")
    lm_dir = export_dir + ".labels"
    os.makedirs(lm_dir, exist_ok=True)
    lm_path = os.path.join(lm_dir, "label_map.pbtxt")
    label_map().write(lm_path)
    return export.export(build_network(model_config, 3), model_config, lm_path, export_dir)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return export_tiny(str(tmp_path_factory.mktemp("tiny") / "model"))
