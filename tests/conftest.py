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
