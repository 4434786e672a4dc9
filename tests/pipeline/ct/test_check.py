"""`detx ct check` on real synthetic spans against a served version with training statistics (no training)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os

import pytest

from detx.components.data import spans
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.synth import SynthConfig, label_map, write_dataset
from detx.components.evaluation import score_profile
from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore
from detx.pipeline.config import ContinuousTrainingConfig
from detx.pipeline.ct import stats
from detx.pipeline.ct.check import check

OPTIONS = IngestOptions(data_format="coco", span_window=2)
# The generator settings of the served model's training data, and of each later delivery.
BASE = SynthConfig(num_images=160, seed=1)
DELIVERIES = {
    "same": SynthConfig(num_images=100, seed=2, first_id=1001),
    "class_mix": SynthConfig(num_images=100, seed=3, first_id=2001, class_weights=(5, 1, 1)),
    "darker": SynthConfig(num_images=100, seed=4, first_id=3001, brightness=0.45),
    "new_class": SynthConfig(
        num_images=100,
        seed=5,
        first_id=4001,
        classes=("circle", "square", "triangle", "cross"),
        class_weights=(1, 1, 1, 1),
    ),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("deliveries")
    return {
        name: write_dataset(str(root / name), config, "coco").out_dir
        for name, config in {"base": BASE, **DELIVERIES}.items()
    }


def _served(tmp_path, fake_saved_model, root, pushed_at=None, metrics=None):
    """Span 1 and a served version 1 trained on it, with its training statistics (as the Pusher stores them)."""
    reference = stats.span_statistics(root, [1], OPTIONS).statistics
    model = fake_saved_model(str(tmp_path / "model"))
    label_map().write(os.path.join(model, "assets", "label_map.pbtxt"))
    dest = str(tmp_path / "models" / "detx")
    store = ModelStore(dest)
    lineage = {"data": {"source": root, "spans": [1]}, "metrics": metrics or {}}
    store.push(model, lineage, extra_files={TRAIN_STATS_FILENAME: reference.SerializeToString()})
    if pushed_at is not None:  # age the version
        path = os.path.join(store.path(1), "detx_lineage.json")
        with open(path) as f:
            record = json.load(f)
        record["pushed_at"] = pushed_at
        with open(path, "w") as f:
            json.dump(record, f)
    return dest


def _root_with(tmp_path, sources, delivery):
    root = str(tmp_path / "data")
    spans.add_span(root, sources["base"])
    if delivery:
        spans.add_span(root, sources[delivery])
    return root


def _triggered(decision):
    return {s.name: s.message for s in decision.signals if s.triggered}


def test_a_span_from_the_same_generator_does_not_trigger(tmp_path, sources, fake_saved_model):
    root = _root_with(tmp_path, sources, "same")
    decision = check(root, OPTIONS, _served(tmp_path, fake_saved_model, root), ContinuousTrainingConfig())
    assert not decision.retrain, decision.format()
    assert decision.new_spans == (2,) and decision.window == (1, 2)
    messages = decision.format()
    assert "span 2: 100 new images (fewer than 500)" in messages
    assert "class mix: L-infinity" in messages and "brightness: Jensen-Shannon" in messages
    assert "no retraining needed" in messages


@pytest.mark.parametrize(
    "delivery,signal,words",
    [
        ("class_mix", "drift", "class mix: L-infinity"),
        ("darker", "drift", "brightness: Jensen-Shannon"),
        ("new_class", "new class", "'cross' is"),
    ],
)
def test_a_shifted_span_triggers_with_the_reason(tmp_path, sources, fake_saved_model, delivery, signal, words):
    root = _root_with(tmp_path, sources, delivery)
    decision = check(root, OPTIONS, _served(tmp_path, fake_saved_model, root), ContinuousTrainingConfig())
    assert decision.retrain, decision.format()
    assert signal in _triggered(decision) and words in _triggered(decision)[signal]
    assert "retrain on spans 1-2" in decision.format()
    if delivery == "darker":  # the figures behind the number are shown
        assert "was" in _triggered(decision)["drift"] and "mean" in _triggered(decision)["drift"]
        assert "class mix" not in " ".join(decision.reasons)  # only what moved triggers


def test_thresholds_are_configurable(tmp_path, sources, fake_saved_model):
    root = _root_with(tmp_path, sources, "class_mix")
    lax = ContinuousTrainingConfig(class_linf=0.9)
    assert not check(root, OPTIONS, _served(tmp_path, fake_saved_model, root), lax).retrain
    eager = ContinuousTrainingConfig(min_new_images=100, class_linf=0.9)
    decision = check(root, OPTIONS, str(tmp_path / "models" / "detx"), eager)
    assert decision.retrain and "at least 100" in _triggered(decision)["new data"]


def test_nothing_served_age_and_no_new_span(tmp_path, sources, fake_saved_model):
    root = _root_with(tmp_path, sources, None)
    first = check(root, OPTIONS, str(tmp_path / "nothing"), ContinuousTrainingConfig())
    assert first.retrain and "no model" in _triggered(first)
    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)).isoformat()
    dest = _served(tmp_path, fake_saved_model, root, pushed_at=old)
    decision = check(root, OPTIONS, dest, ContinuousTrainingConfig())
    assert "no span newer than 1" in decision.format()
    assert decision.retrain and "pushed 40.0 days ago (more than 30)" in _triggered(decision)["age"]
    assert not check(root, OPTIONS, dest, ContinuousTrainingConfig(max_model_age_days=0)).retrain


def test_live_confidence_fall_triggers_and_serving_skew_is_reported(tmp_path, sources, fake_saved_model):
    from detx.components.data.images import image_statistics
    from detx.serving.model_server.request_log import LoggedImage

    images = os.path.join(sources["base"], "images")
    brightness = [image_statistics(open(os.path.join(images, f), "rb").read())[2] for f in sorted(os.listdir(images))]
    root = _root_with(tmp_path, sources, None)
    dest = _served(tmp_path, fake_saved_model, root, metrics={score_profile.TOP_SCORE: 0.8})
    log_dir = tmp_path / "requests"
    log_dir.mkdir()

    def write(name, top, dim, version=1, n=60, start=0):
        lines = [
            json.dumps(
                dataclasses.asdict(
                    LoggedImage(
                        "2026-11-22T10:00:00+00:00",
                        "detx",
                        version,
                        "encoded_image",
                        640,
                        480,
                        brightness[(start + i) % len(brightness)] * dim,
                        top,
                        1,
                    )
                )
            )
            for i in range(n)
        ]
        (log_dir / f"requests-{name}.jsonl").write_text("\n".join(lines) + "\n")

    config = ContinuousTrainingConfig(request_log=str(log_dir))
    write("a", top=0.78, dim=1.0, n=30)
    decision = check(root, OPTIONS, dest, config)
    assert not decision.retrain and "30 logged images of version 1" in decision.format()
    write("b", top=0.78, dim=1.0, n=30, start=30)
    write("old", top=0.1, dim=0.2, version=0, n=200)  # another version's traffic does not count
    decision = check(root, OPTIONS, dest, config)
    assert not decision.retrain, decision.format()
    assert "mean top score 0.78 over 60 logged images vs 0.80" in decision.format()
    assert "WARNING skew" not in decision.format()
    write("c", top=0.3, dim=0.4, n=120, start=60)  # dark images the model is unsure about
    decision = check(root, OPTIONS, dest, config)
    assert decision.retrain and "mean top score 0.46 over 180" in _triggered(decision)["live quality"]
    assert "WARNING skew: serving brightness: Jensen-Shannon" in decision.format()
    assert "skew" not in _triggered(decision)  # skew is reported, never a trigger on its own
