"""`detx ct check`'s model quality: the staleness curve (real scoring, cached) and offline/online agreement."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import tensorflow as tf

from detx.components.data import features as F
from detx.components.data import spans
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.synth import SynthConfig, label_map, write_dataset
from detx.components.evaluation import score_profile
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.model_store import ModelStore
from detx.pipeline.config import ContinuousTrainingConfig
from detx.pipeline.ct import quality, staleness
from detx.pipeline.ct.agreement import AGREES, DISAGREES, NO_REFERENCE, TOO_FEW, agreement
from detx.pipeline.ct.check import check
from detx.serving.model_server.request_log import LoggedImage
from testing.evaluation import write_oracle_model

OPTIONS = IngestOptions(data_format="coco", span_window=1)
SPLITS = {"train": 4, "eval": 1}
SMALL = {"width": 96, "height": 96, "min_size": 16, "max_size": 40, "max_objects": 4}
DELIVERIES = [
    SynthConfig(num_images=20, seed=1, **SMALL),  # span 1: what version 1 was trained on
    SynthConfig(num_images=40, seed=2, first_id=1001, **SMALL),  # span 2
    # span 3: a class version 1 does not know
    SynthConfig(
        num_images=40,
        seed=3,
        first_id=2001,
        classes=("circle", "square", "triangle", "cross"),
        class_weights=(1, 1, 1, 1),
        **SMALL,
    ),
]
OWN_MAP_50 = 0.9


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Spans 1-3 delivered as files, and an oracle detector of middling quality (real SavedModel, tf_example)."""
    base = tmp_path_factory.mktemp("quality")
    deliveries = [write_dataset(str(base / f"delivery{i}"), c, "coco").out_dir for i, c in enumerate(DELIVERIES)]
    model = write_oracle_model(str(base / "oracle"), jitter=0.04, keep=0.8, false_positives=1)
    label_map().write(os.path.join(model, "assets", "label_map.pbtxt"))
    return deliveries, model


def _project(tmp_path, world, num_spans=2):
    """A span root with `num_spans` spans and version 1 (trained on span 1) served."""
    deliveries, model = world
    root = str(tmp_path / "data")
    for d in deliveries[:num_spans]:
        spans.add_span(root, d)
    dest = str(tmp_path / "models" / "detx")
    lineage = {
        "data": {"source": root, "spans": [1]},
        "metrics": {"map_50": OWN_MAP_50, score_profile.TOP_SCORE: 0.8, score_profile.DETECTIONS: 2.0},
    }
    ModelStore(dest).push(model, lineage)
    return root, dest


def _quality(tmp_path, max_drop=0.0):
    return quality.QualityOptions(str(tmp_path / "ct"), SPLITS, max_drop)


def test_the_curve_is_recorded_and_each_version_and_span_scored_once(tmp_path, world):
    root, dest = _project(tmp_path, world)
    decision = check(root, OPTIONS, dest, ContinuousTrainingConfig(), quality_options=_quality(tmp_path))
    (point,) = decision.staleness
    assert (point.version, point.span) == (1, 2)
    assert point.eval_images > 0 and 0.2 < point.map_50 < 0.95, point
    assert point.drop == pytest.approx(OWN_MAP_50 - point.map_50)
    assert point.span_date and point.age_days is not None and point.left_out_boxes == 0
    text = decision.format()
    assert "staleness: version 1's mAP@0.5 on the new spans' eval splits" in text
    assert f"{point.map_50:.3f}" in text and "no limit set (reported only)" in text
    assert not decision.retrain  # reported only, and nothing else fired
    # Kept in the state directory, and shown in --json.
    with open(tmp_path / "ct" / quality.QUALITY_FILE) as f:
        assert json.load(f)["staleness"][0]["map_50"] == point.map_50
    assert decision.to_dict()["staleness"][0]["drop"] == pytest.approx(point.drop)

    # A re-run scores nothing again; a new span is scored alone.
    record = quality.QualityRecord(str(tmp_path / "ct"))
    store = ModelStore(dest)
    again, scored = quality.staleness_curve(record, store, 1, root, [2], OPTIONS, SPLITS)
    assert scored == 0 and again == [point]
    spans.add_span(root, world[0][2])
    curve, scored = quality.staleness_curve(record, store, 1, root, [2, 3], OPTIONS, SPLITS)
    assert scored == 1 and curve[0] == point and curve[1].span == 3
    assert curve[1].left_out_boxes > 0  # the crosses: version 1 cannot detect them
    assert [(p.version, p.span) for p in record.points()] == [(1, 2), (1, 3)]


def test_a_drop_past_the_limit_triggers_a_retraining(tmp_path, world):
    root, dest = _project(tmp_path, world)
    decision = check(root, OPTIONS, dest, ContinuousTrainingConfig(), quality_options=_quality(tmp_path, 0.05))
    (point,) = decision.staleness
    assert decision.retrain and "staleness" in {s.name for s in decision.signals if s.triggered}
    assert f"{point.map_50:.3f} on {point.eval_images} eval images" in " ".join(decision.reasons)
    assert "more than the 0.05 allowed" in " ".join(decision.reasons)
    lax = check(root, OPTIONS, dest, ContinuousTrainingConfig(), quality_options=_quality(tmp_path, 0.9))
    assert not lax.retrain and "no more than the 0.90 allowed" in lax.format()


def test_the_map_is_the_existing_scoring_on_example_gens_own_eval_split(tmp_path, world):
    """DetectionExampleGen's executor writes span 2's eval split; COCO scoring of the same model on it agrees."""
    from tfx.types import standard_artifacts

    from detx.components.evaluator.eval_config import SIGNATURE
    from detx.components.example_gen.component import DetectionExampleGen
    from detx.components.example_gen.executor import Executor

    root, dest = _project(tmp_path, world)
    component = DetectionExampleGen(root, OPTIONS, SPLITS, span=2)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    Executor().Do({}, {"examples": [examples]}, {k: v for k, v in component.exec_properties.items() if v is not None})
    eval_split = read_examples(os.path.join(examples.uri, "Split-eval", "*"))
    assert eval_split

    (point,) = quality.staleness_curve(
        quality.QualityRecord(str(tmp_path / "ct")), ModelStore(dest), 1, root, [2], OPTIONS, SPLITS
    )[0]
    signature = tf.saved_model.load(ModelStore(dest).path(1)).signatures[SIGNATURE]
    expected = evaluate(lambda batch: signature(examples=batch), eval_split, 3)
    assert point.eval_images == len(eval_split) == expected.num_images
    assert point.map_50 == pytest.approx(expected.map_50, abs=1e-9)


def test_the_eval_split_is_example_gens_partition(world):
    """Images of a span fall in eval by TFX's hash of their span-qualified id, about 1 in 5."""
    select = staleness.eval_selector(SPLITS)
    ids = [f"span-2/{i}" for i in range(1000)]
    chosen = sum(select(_example(i)) for i in ids)
    assert 150 < chosen < 250
    with pytest.raises(ValueError, match="has no 'eval' split"):
        staleness.eval_selector({"train": 1, "test": 1})


def _example(source_id):
    example = tf.train.Example()
    example.features.feature[F.SOURCE_ID].bytes_list.value.append(source_id.encode())
    return example


def _logged(version, top, confident=2, role="stable"):
    time = "2026-11-30T05:00:00+00:00"
    return LoggedImage(time, "detx", version, "encoded_image", 96, 96, 100.0, top, confident, role)


def test_agreement_flags_a_version_whose_live_confidence_differs_and_passes_one_that_agrees():
    lineage = {"metrics": {score_profile.TOP_SCORE: 0.8, score_profile.DETECTIONS: 2.0}}
    records = (
        [_logged(1, 0.78) for _ in range(40)]
        + [_logged(1, 0.74, role="canary") for _ in range(20)]
        + [_logged(2, 0.40, confident=0) for _ in range(60)]
        + [_logged(3, 0.10) for _ in range(5)]
        + [_logged(4, 0.5) for _ in range(60)]
    )
    rows = {r.version: r for r in agreement(records, {1: lineage, 2: lineage, 3: lineage}, 0.2, 50)}
    assert rows[1].verdict == AGREES and rows[1].roles == {"stable": 40, "canary": 20}
    assert rows[1].difference == pytest.approx((0.7666667 - 0.8) / 0.8, abs=1e-6)
    assert rows[2].verdict == DISAGREES and rows[2].difference == pytest.approx(-0.5)
    assert "live top score 0.40 over 60 images vs 0.80 on the eval split (-50%; tolerance +-20%)" in rows[2].sentence()
    assert "confident detections per image 0.00 vs 2.00" in rows[2].sentence()
    assert rows[3].verdict == TOO_FEW and rows[4].verdict == NO_REFERENCE
    # More confident live than on the eval split disagrees too: something changed what the model sees.
    (high,) = agreement([_logged(1, 0.99)] * 50, {1: lineage}, 0.2, 50)
    assert high.verdict == DISAGREES


def test_check_reports_agreement_per_version_and_keeps_it(tmp_path, world):
    root, dest = _project(tmp_path, world)
    ModelStore(dest).push(world[1], {"metrics": {score_profile.TOP_SCORE: 0.8}})  # version 2, served now
    log = tmp_path / "requests"
    log.mkdir()
    lines = [_logged(1, 0.79, role="canary")] * 50 + [_logged(2, 0.3)] * 50
    (log / "requests-a.jsonl").write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in lines))
    config = ContinuousTrainingConfig(request_log=str(log))
    decision = check(root, OPTIONS, dest, config, quality_options=_quality(tmp_path))
    text = decision.format()
    assert "offline/online agreement" in text
    assert "version 2 (stable 50): disagrees" in text and "version 1 (canary 50): agrees" in text
    assert "WARNING agreement: version 2" in text
    with open(tmp_path / "ct" / quality.QUALITY_FILE) as f:
        kept = json.load(f)["agreement"]["versions"]
    assert [(v["version"], v["verdict"]) for v in kept] == [(2, DISAGREES), (1, AGREES)]


def test_a_version_that_cannot_be_loaded_is_reported_not_scored(tmp_path, world, fake_saved_model):
    deliveries, _ = world
    root = str(tmp_path / "data")
    for d in deliveries[:2]:
        spans.add_span(root, d)
    dest = str(tmp_path / "models" / "detx")
    model = fake_saved_model(str(tmp_path / "fake"))  # a SavedModel's shape, not a SavedModel
    label_map().write(os.path.join(model, "assets", "label_map.pbtxt"))
    ModelStore(dest).push(model, {"data": {"source": root, "spans": [1]}})
    decision = check(root, OPTIONS, dest, ContinuousTrainingConfig(), quality_options=_quality(tmp_path, 0.05))
    (line,) = [s for s in decision.signals if s.name == "staleness"]
    assert not line.triggered and "not measured: version 1" in line.message
    assert "cannot be loaded as a SavedModel" in line.message
    assert decision.staleness == () and not os.path.exists(tmp_path / "ct" / quality.QUALITY_FILE)
