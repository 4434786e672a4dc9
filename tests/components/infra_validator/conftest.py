"""Eval-split tf.Examples for the InfraValidator tests."""

from __future__ import annotations

import glob
import os

import pytest


@pytest.fixture(scope="module")
def eval_examples(tmp_path_factory) -> list[bytes]:
    import tensorflow as tf

    from testing.data import write_examples

    root = write_examples(str(tmp_path_factory.mktemp("examples") / "examples"), 10, seed=3)
    files = sorted(glob.glob(os.path.join(root, "Split-eval", "*")))
    return [bytes(r) for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()]
