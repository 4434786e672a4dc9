"""Warm start from a served version: restore layer by layer, new class rows at the prior, a new class learned.

Production here is a real detector: the tiny preset's network at 64 px, trained
for 150 steps on big synthetic shapes (three classes), exported as run_fn
exports it (folded SavedModel plus the training weights) and pushed into a
push destination. Small images and one big object per image make it learn in
seconds; the code paths are the preset's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap
from detx.components.data.synth import SHAPES, SynthConfig, generate, label_map, od_api_example
from detx.components.evaluation.coco_metrics import evaluate
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import data, export, pretrained, train, training_weights, warm_start
from detx.components.trainer.options import TrainerOptions
from testing.evaluation import write_oracle_model

SIZE = 64
MODEL = dataclasses.replace(preset("tiny")[0], image_size=SIZE)
TRAIN = dataclasses.replace(
    preset("tiny")[1],
    batch_size=8,
    reference_batch_size=8,
    train_steps=300,
    warmup_steps=30,
    checkpoint_every=150,
    shuffle_buffer=256,
)
# One big object per image, on the generator's textured, noisy backgrounds.
SHAPES_AT_64 = {"width": SIZE, "height": SIZE, "min_size": 28, "max_size": 44, "max_objects": 1, "empty_fraction": 0.0}
OLD = label_map()  # circle, square, triangle
NEW = label_map(SHAPES)  # ... and cross, appended as a span root's union label map does


def _records(path: str, config: SynthConfig) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for image in generate(config):
            writer.write(od_api_example(image).SerializeToString())  # label ids in SHAPES order
    return path


def _label_map_file(directory: str, labels: LabelMap) -> str:
    os.makedirs(directory, exist_ok=True)
    labels.write(os.path.join(directory, LABEL_MAP_FILENAME))
    return os.path.join(directory, LABEL_MAP_FILENAME)


def _ap50(network, label_map_path, examples) -> list[float]:
    """AP@0.5 per class (circle, square, triangle, cross) of the unfolded network, by pycocotools."""
    module = export.DetectorModule(network, MODEL, label_map_path, None, fold_batchnorm=False)
    precision = evaluate(module.detect_examples, examples, len(SHAPES)).precision
    assert precision is not None
    per_class = [precision[0, :, c, 0, -1] for c in range(len(SHAPES))]  # IoU .5, all areas, 100 detections
    return [float(np.mean(p[p > -1])) if (p > -1).any() else 0.0 for p in per_class]


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """Version 1 of a push destination: trained on the old classes, exported and pushed."""
    root = tmp_path_factory.mktemp("production")
    train_file = _records(str(root / "old" / "train.gz"), SynthConfig(160, seed=1, **SHAPES_AT_64))
    result = train.train(
        lambda b: data.make_dataset(train_file, MODEL, TRAIN, batch_size=b),
        MODEL,
        TRAIN,
        OLD.num_classes,
        str(root / "run"),
        log=lambda _: None,
    )
    labels = _label_map_file(str(root / "labels3"), OLD)
    model_dir = export.export(result.network, MODEL, labels, str(root / "model"), batching=None)
    training_weights.write(result.network, MODEL, model_dir)  # as run_fn does
    dest = str(root / "models" / "detx")
    ModelStore(dest).push(model_dir, {})
    return dest, result.network, root


def _warm_network(dest, labels=NEW, model_config=MODEL):
    start = pretrained.resolve(pretrained.PRODUCTION, dest, "", log=lambda _: None)
    network = build_network(model_config, labels.num_classes)
    messages: list[str] = []
    pretrained.start_initializer(start, "detection", labels, model_config, log=messages.append)(network)
    return start, network, messages


def test_production_is_read_back_from_the_push_destination_signatures_and_label_map(production):
    dest, _, _ = production
    start, _, messages = _warm_network(dest)
    assert start.warm and start.source is not None
    assert (start.source.version, start.source.path) == (1, ModelStore(dest).path(1))
    assert start.source.signatures == tuple(sorted(export.SIGNATURES))
    assert start.source.label_map == OLD  # from the SavedModel's asset list, not from this run's label map
    assert messages == [
        f"warm start: restored 340 weights of version 1 ({start.source.path}); new class(es) cross start at "
        "the focal-loss prior"
    ]
    facts = start.facts(["cross"])
    assert facts["warm_start"]["version"] == 1 and facts["warm_start"]["new_classes"] == ["cross"]
    assert facts["pretrained"] == start.source.path and facts["pretrained_setting"] == "production"


def test_restored_weights_equal_production_layer_by_layer_except_the_new_class_rows(production):
    dest, trained, _ = production
    _, network, _ = _warm_network(dest)
    ours = {v.path: v.numpy() for v in network.model.weights}
    theirs = {v.path: v.numpy() for v in trained.model.weights}
    assert ours.keys() == theirs.keys() and len(ours) == 340
    head = ("class_head/pointwise_kernel", "class_head/bias")
    for key in sorted(set(ours) - set(head)):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)  # BN moving statistics included
    anchors, k_old, k_new = MODEL.anchors_per_location, OLD.num_classes, NEW.num_classes
    kernel = ours["class_head/pointwise_kernel"].reshape(-1, anchors, k_new + 1)
    bias = ours["class_head/bias"].reshape(anchors, k_new + 1)
    old_kernel = theirs["class_head/pointwise_kernel"].reshape(-1, anchors, k_old + 1)
    np.testing.assert_array_equal(kernel[:, :, : k_old + 1], old_kernel)  # background and old classes
    np.testing.assert_array_equal(bias[:, : k_old + 1], theirs["class_head/bias"].reshape(anchors, k_old + 1))
    np.testing.assert_array_equal(kernel[:, :, k_old + 1 :], 0.0)  # the new class's rows: the prior
    np.testing.assert_array_equal(bias[:, k_old + 1 :], np.float32(MODEL.class_bias_init))
    # So at step 0 the old classes answer exactly as production did, and the new one scores the prior.
    images = tf.random.stateless_uniform([2, SIZE, SIZE, 3], seed=[1, 2], minval=-1, maxval=1)
    codes, logits = network.model(images, training=False)
    old_codes, old_logits = trained.model(images, training=False)
    np.testing.assert_allclose(codes, old_codes, atol=1e-5)
    np.testing.assert_allclose(logits[..., : k_old + 1], old_logits, atol=1e-5)
    np.testing.assert_array_equal(logits[..., k_old + 1], np.float32(MODEL.class_bias_init))


def test_a_span_with_a_new_class_trains_it_and_the_old_classes_keep_their_ap(production, tmp_path):
    dest, trained, root = production
    both = {"classes": SHAPES, "class_weights": (1.0, 1.0, 1.0, 1.0)}
    new_train = _records(str(tmp_path / "train.gz"), SynthConfig(160, seed=2, first_id=1000, **both, **SHAPES_AT_64))
    eval_file = _records(str(tmp_path / "eval.gz"), SynthConfig(48, seed=3, first_id=5000, **both, **SHAPES_AT_64))
    examples = [bytes(r) for r in tf.data.TFRecordDataset(eval_file, compression_type="GZIP").as_numpy_iterator()]
    before = _ap50(trained, os.path.join(root, "labels3", LABEL_MAP_FILENAME), examples)
    # The warm-start schedule's learning rate (TrainerOptions' default share of the preset's).
    share = TrainerOptions().warm_start_learning_rate
    config = dataclasses.replace(
        TRAIN,
        train_steps=100,
        warmup_steps=12,
        checkpoint_every=100,
        base_learning_rate=TRAIN.base_learning_rate * share,
        warmup_learning_rate=TRAIN.warmup_learning_rate * share,
    )
    start = pretrained.resolve(pretrained.PRODUCTION, dest, "", log=lambda _: None)
    result = train.train(
        lambda b: data.make_dataset(new_train, MODEL, config, batch_size=b),
        MODEL,
        config,
        NEW.num_classes,
        str(tmp_path / "run"),
        initialize=pretrained.start_initializer(start, "detection", NEW, MODEL, log=lambda _: None),
        log=lambda _: None,
    )
    after = _ap50(result.network, _label_map_file(str(tmp_path / "labels4"), NEW), examples)
    assert before[3] == 0.0 and after[3] > 0.05, (before, after)  # production cannot see crosses; now it can
    assert min(before[:3]) > 0.1, before  # production really detects the old classes ...
    # ... and the warm start kept them (production needed 300 steps at 4x this rate to learn them). Per class
    # with slack (a dozen eval boxes each), on average closer.
    assert all(new >= 0.5 * old for old, new in zip(before[:3], after[:3], strict=True)), (before, after)
    assert np.mean(after[:3]) >= 0.8 * np.mean(before[:3]), (before, after)


def test_a_class_that_disappeared_or_moved_is_an_error_naming_it(production):
    dest, _, _ = production
    with pytest.raises(warm_start.WarmStartError, match=r"class\(es\) 'square' of version 1 are not in this run's"):
        _warm_network(dest, LabelMap(("circle", "triangle", "cross")))
    with pytest.raises(warm_start.WarmStartError, match=r"'circle' is label 1 in version 1 but 2 here"):
        _warm_network(dest, LabelMap(("cross", "circle", "square", "triangle")))


def test_the_label_map_asset_is_what_counts_and_a_non_detx_model_is_refused(production, tmp_path):
    dest, _, _ = production
    copy = str(tmp_path / "models" / "7")
    shutil.copytree(ModelStore(dest).path(1), copy)
    _label_map_file(os.path.join(copy, "assets"), LabelMap(("circle", "square")))  # the asset now says 2 classes
    start = pretrained.resolve(copy, str(tmp_path / "models"), "", log=lambda _: None)
    assert start.source is not None and start.source.version == 7 and start.source.label_map.num_classes == 2
    with pytest.raises(warm_start.WarmStartError, match="are for 3 classes but its label map asset has 2"):
        pretrained.start_initializer(start, "detection", NEW, MODEL)(build_network(MODEL, NEW.num_classes))
    oracle = write_oracle_model(str(tmp_path / "oracle"))
    with pytest.raises(warm_start.WarmStartError, match="not a detector exported by detx"):
        warm_start.read_source(oracle)


def test_another_architecture_does_not_fit_and_nothing_is_assigned(production):
    dest, _, _ = production
    other = dataclasses.replace(MODEL, fpn_depth=32)
    network = build_network(other, NEW.num_classes)
    before = [v.numpy() for v in network.model.weights]
    shapes = r"(?s)built with .*fpn_depth 64.*this run builds .*fpn_depth 32.*Use the preset it was trained with"
    with pytest.raises(warm_start.WarmStartError, match=shapes):
        _warm_network(dest, NEW, other)
    with pytest.raises(warm_start.WarmStartError, match="do not fit this network"):
        start = pretrained.resolve(pretrained.PRODUCTION, dest, "", log=lambda _: None)
        pretrained.start_initializer(start, "detection", NEW, other)(network)
    for was, now in zip(before, network.model.weights, strict=True):
        np.testing.assert_array_equal(was, now.numpy())
