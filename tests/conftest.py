"""Shared fixtures: synthetic datasets written once per test session."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")

SMALL_IMAGES = 40


@pytest.fixture(scope="session")
def small_datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same 40-image synthetic dataset in COCO, VOC and TFRecord form."""
    from components.data.synth import FORMATS, SynthConfig, write_dataset

    root = tmp_path_factory.mktemp("synth")
    config = SynthConfig(num_images=SMALL_IMAGES, seed=7)
    return {fmt: write_dataset(str(root / fmt), config, fmt).out_dir for fmt in FORMATS}


@pytest.fixture
def fake_saved_model():
    """Writes a directory shaped like a SavedModel (the model store copies files, it never loads them)."""
    from components.pusher.model_store import SAVED_MODEL_FILE

    def _fake_saved_model(path, files=20, payload=b"x" * 1000):
        os.makedirs(os.path.join(path, "variables"))
        os.makedirs(os.path.join(path, "assets"))
        for i in range(files):
            with open(os.path.join(path, "variables", f"variables.data-{i:05d}-of-{files:05d}"), "wb") as f:
                f.write(payload)
        with open(os.path.join(path, "variables", "variables.index"), "wb") as f:
            f.write(b"index")
        with open(os.path.join(path, "assets", "label_map.pbtxt"), "w") as f:
            f.write('item { name: "a" id: 1 }\n')
        with open(os.path.join(path, SAVED_MODEL_FILE), "wb") as f:
            f.write(b"graph")
        return str(path)

    return _fake_saved_model
