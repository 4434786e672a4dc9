"""The Model Zoo checkpoint loader, tested on a checkpoint written in the Zoo's exact key layout.

tests/data/model_zoo_ssd_ckpt0_keys.tsv lists every key and shape of the real
ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8 checkpoint/ckpt-0.index.
"""

import os

import numpy as np
import pytest

from detx.components.modeling.config import ModelConfig
from detx.components.modeling.network import build_network
from detx.components.modeling.zoo_checkpoint import (
    CheckpointMismatchError,
    checkpoint_prefix,
    restore,
    shapes_in,
    write_zoo_layout_checkpoint,
    zoo_variable_map,
)

KEYS_TSV = os.path.join(os.path.dirname(__file__), "..", "..", "data", "model_zoo_ssd_ckpt0_keys.tsv")


def _zoo_keys():
    keys = {}
    for line in open(KEYS_TSV):
        if line.startswith("#") or line.startswith("_CHECKPOINTABLE") or line.startswith("save_counter"):
            continue
        key, _dtype, shape, *_ = line.rstrip("\n").split("\t")
        keys[key] = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
    return keys


@pytest.fixture(scope="module")
def zoo_model_dir(tmp_path_factory):
    """A Zoo-style model dir: pipeline.config + checkpoint/ckpt-0 with the Zoo's keys (COCO's 90 classes)."""
    source = build_network(ModelConfig(), num_classes=90)
    root = tmp_path_factory.mktemp("zoo")
    (root / "pipeline.config").write_text("model { ssd { num_classes: 90 } }\n")
    write_zoo_layout_checkpoint(source, str(root / "checkpoint" / "ckpt-0"))
    return str(root), source


def test_mapping_covers_exactly_the_zoo_keys_with_the_zoo_shapes():
    network = build_network(ModelConfig(), num_classes=90)
    mapped = {k: list(v.shape) for k, v in zoo_variable_map(network, "full").items()}
    assert len(mapped) == 384
    assert mapped == _zoo_keys()
    assert len(zoo_variable_map(network, "detection")) == 290


def test_written_checkpoint_has_the_zoo_layout(zoo_model_dir):
    model_dir, _ = zoo_model_dir
    shapes = {k: list(v) for k, v in shapes_in(checkpoint_prefix(model_dir)).items() if k.startswith("model/")}
    assert shapes == _zoo_keys()


def _equal(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_detection_scope_restores_backbone_fpn_and_coarse_only(zoo_model_dir):
    model_dir, source = zoo_model_dir
    target = build_network(ModelConfig(), num_classes=3)
    before_box = target.box_head.pointwise_kernel.numpy().copy()
    n = restore(target, checkpoint_prefix(model_dir), "detection")
    assert n == 290
    assert _equal(target.backbone.layers[1].kernel, source.backbone.layers[1].kernel)
    assert _equal(target.fpn_top.kernel, source.fpn_top.kernel)
    assert _equal(target.coarse[1][1].moving_variance, source.coarse[1][1].moving_variance)
    assert _equal(target.box_head.pointwise_kernel, before_box)  # the predictor starts fresh
    assert not _equal(target.tower_convs[0].depthwise_kernel, source.tower_convs[0].depthwise_kernel)


def test_detection_box_scope_also_restores_tower_and_box_head_but_not_class_head(zoo_model_dir):
    model_dir, source = zoo_model_dir
    target = build_network(ModelConfig(), num_classes=3)
    restore(target, checkpoint_prefix(model_dir), "detection+box")
    assert _equal(target.tower_convs[3].pointwise_kernel, source.tower_convs[3].pointwise_kernel)
    assert _equal(target.tower_bns[4][2].gamma, source.tower_bns[4][2].gamma)
    assert _equal(target.box_head.bias, source.box_head.bias)
    assert target.class_head.pointwise_kernel.shape[-1] == 6 * 4  # 3 classes + background, fresh


def test_full_restore_with_another_class_count_fails_listing_the_keys(zoo_model_dir):
    model_dir, _ = zoo_model_dir
    target = build_network(ModelConfig(), num_classes=3)
    before = target.backbone.layers[1].kernel.numpy().copy()
    with pytest.raises(CheckpointMismatchError) as info:
        restore(target, checkpoint_prefix(model_dir), "full")
    message = str(info.value)
    assert "2 key(s) with another shape" in message
    assert (
        "_class_predictor_layers/0/pointwise_kernel/.ATTRIBUTES/VARIABLE_VALUE: checkpoint [1, 1, 128, 546], "
        "model [1, 1, 128, 24]" in message
    )
    assert _equal(target.backbone.layers[1].kernel, before)  # nothing half-loaded


def test_a_checkpoint_of_another_width_fails_before_loading_anything(zoo_model_dir):
    model_dir, _ = zoo_model_dir
    narrow = build_network(ModelConfig(alpha=0.35, fpn_depth=64, tower_layers=2), num_classes=3)
    with pytest.raises(CheckpointMismatchError, match=r"key\(s\) with another shape"):
        restore(narrow, checkpoint_prefix(model_dir), "detection")


def test_missing_keys_are_listed(tmp_path):
    net = build_network(ModelConfig(alpha=0.35, fpn_depth=64, tower_layers=2), num_classes=3)
    import tensorflow as tf

    prefix = tf.train.Checkpoint(other=tf.Variable(1.0)).write(str(tmp_path / "ckpt-0"))
    with pytest.raises(CheckpointMismatchError, match=r"290 key\(s\) missing:\n  model/_feature_extractor"):
        restore(net, prefix, "detection")


def test_not_a_zoo_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a Model Zoo model directory"):
        checkpoint_prefix(str(tmp_path))
