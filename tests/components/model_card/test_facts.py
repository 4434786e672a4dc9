"""The card's facts: counts read back from a real Examples artifact, and the Trainer's facts from a real run_fn."""

from __future__ import annotations

import collections
import json
import os

import pytest
import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.data.records import Reject, RejectReason
from detx.components.example_gen.executor import write_reports
from detx.components.example_gen.report import IngestSummary
from detx.components.model_card.facts import (
    TRAINING_FACTS_FILE,
    ModelCardError,
    data_facts,
    training_device,
    training_facts,
)
from detx.components.modeling.network import build_network
from detx.components.trainer import export, train
from detx.components.trainer.executor import DetectionFnArgs
from detx.components.trainer.run_fn import run_fn
from testing.data import write_examples

CARD_TRAINING_KEYS = (
    "preset",
    "train_steps",
    "resumed_from_step",
    "pretrained",
    "device",
    "batch_size",
    "duration_seconds",
    "final_loss",
    "tensorflow_version",
)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """An Examples artifact laid out as DetectionExampleGen writes it, with its ingestion reports."""
    uri = write_examples(str(tmp_path_factory.mktemp("ex") / "examples"), 30, seed=2, splits={"train": 21, "eval": 9})
    rejects = [
        Reject("7", "a.jpg", RejectReason.CORRUPT_IMAGE, "truncated"),
        Reject("8", "b.jpg", RejectReason.CORRUPT_IMAGE, "truncated"),
        Reject("9", "c.jpg", RejectReason.BAD_BOX, "negative width"),
    ]
    summary = IngestSummary.build(
        data_format="coco",
        input_base="/data/shapes",
        num_records=33,
        rejects=rejects,
        notes={"examples": 30},
        category_ids={"1": 1},
        max_rejected_fraction=0.1,
        spans=(2, 3),
    )
    write_reports(uri, rejects, summary)
    return uri


def _expected(split_dir: str) -> tuple[int, collections.Counter, collections.Counter]:
    """Examples, boxes per label and examples per label, counted the slow, obvious way."""
    boxes, holding, count = collections.Counter(), collections.Counter(), 0
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(split_dir, "*")), compression_type="GZIP"):
        labels = tf.train.Example.FromString(record.numpy()).features.feature[F.LABEL].int64_list.value
        count += 1
        boxes.update(labels)
        holding.update(set(labels))
    return count, boxes, holding


def test_data_facts_count_examples_and_boxes_per_split_and_class(examples):
    facts = data_facts(examples)
    assert facts["classes"] == ["circle", "square", "triangle"]
    assert set(facts["splits"]) == {"train", "eval"}
    for split, size in (("train", 21), ("eval", 9)):
        count, boxes, holding = _expected(os.path.join(examples, f"Split-{split}"))
        got = facts["splits"][split]
        assert got["examples"] == count == size
        assert got["boxes"] == sum(boxes.values()) > 0
        assert got["classes"] == {
            name: {"examples": holding[label], "boxes": boxes[label]}
            for label, name in enumerate(facts["classes"], start=1)
        }
    assert facts["examples"] == 30 and facts["boxes"] == sum(s["boxes"] for s in facts["splits"].values())
    assert facts["spans"] == [2, 3] and facts["source"] == "/data/shapes" and facts["format"] == "coco"
    assert facts["quarantine"] == {
        "records": 33,
        "rejected": 3,
        "fraction": pytest.approx(3 / 33),
        "reasons": {"bad_box": 1, "corrupt_image": 2},
    }


def test_data_facts_name_what_is_missing(tmp_path, examples):
    with pytest.raises(ModelCardError, match="does not exist: give the Examples artifact's directory"):
        data_facts(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelCardError, match="no Split-<name> folders"):
        data_facts(str(tmp_path / "empty"))
    copy = tmp_path / "copy"
    tf.io.gfile.makedirs(str(copy / "Split-train"))
    with pytest.raises(ModelCardError, match=f"cannot name the classes.*{LABEL_MAP_FILENAME} does not exist"):
        data_facts(str(copy))


def test_training_facts_absent_present_and_corrupt(tmp_path):
    assert training_facts(str(tmp_path)) == {}
    path = tmp_path / TRAINING_FACTS_FILE
    path.parent.mkdir()
    path.write_text('{"preset": "tiny"}')
    assert training_facts(str(tmp_path)) == {"preset": "tiny"}
    path.write_text('{"preset": ')
    with pytest.raises(ModelCardError, match=r"is not JSON .*delete it or re-export"):
        training_facts(str(tmp_path))
    path.write_text("[1, 2]")
    with pytest.raises(ModelCardError, match="holds a list, not a JSON object"):
        training_facts(str(tmp_path))


def test_run_fn_writes_the_training_facts_into_the_exported_model(tmp_path, examples, monkeypatch):
    # Training and export are stood in for (a real 2-step run_fn takes a minute here); the real
    # run_fn's facts are read back from a trained, pushed model in tests/serving/test_webapp.py.
    seen = {}

    def fake_train(dataset_fn, model_config, train_config, num_classes, run_dir, **_):
        seen.update(batch=train_config.batch_size, steps=train_config.train_steps, classes=num_classes)
        # A real (untrained) network, so whatever run_fn does with it after training works as it would.
        network = build_network(model_config, num_classes)
        return train.TrainResult(network=network, history={"loss": [1.5, 0.75]}, steps=2, resumed_from_step=1)

    def fake_export(network, model_config, label_map_path, export_dir):
        tf.io.gfile.makedirs(export_dir)
        with tf.io.gfile.GFile(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"graph")
        return export_dir

    monkeypatch.setattr(train, "train", fake_train)
    monkeypatch.setattr(export, "export", fake_export)
    fn_args = DetectionFnArgs(
        train_files=[os.path.join(examples, "Split-train", "*")],
        custom_config={"preset": "tiny", "batch_size": 3},
        train_steps=2,
        serving_model_dir=str(tmp_path / "model"),
        model_run_dir=str(tmp_path / "model_run"),
        pretrained="",
    )
    run_fn(fn_args)
    assert seen == {"batch": 3, "steps": 2, "classes": 3}
    facts = training_facts(fn_args.serving_model_dir)
    assert json.loads((tmp_path / "model" / TRAINING_FACTS_FILE).read_text()) == facts
    # The facts the card's Training section shows (run_fn may record more, e.g. about a warm start).
    assert {k: facts.get(k) for k in CARD_TRAINING_KEYS} == {
        "preset": "tiny",
        "train_steps": 2,
        "resumed_from_step": 1,
        "pretrained": "",
        "device": training_device(),
        "batch_size": 3,
        "duration_seconds": facts["duration_seconds"],
        "final_loss": 0.75,
        "tensorflow_version": tf.__version__,
    }
    assert facts["device"] == "CPU" or facts["device"].startswith("GPU: ")
    assert 0 <= facts["duration_seconds"] < 60
    assert not tf.io.gfile.exists(os.path.join(fn_args.serving_model_dir, TRAINING_FACTS_FILE + ".tmp"))
