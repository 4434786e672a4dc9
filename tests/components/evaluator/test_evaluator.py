"""DetectionEvaluator's executor on real TFMA runs: metrics equal pycocotools', blessing follows both thresholds."""

import os

import pytest
import tensorflow as tf
from tfx.components.evaluator import constants as tfx_constants

from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.evaluator.baseline import BaselineError
from detx.components.model_store import ModelStore
from testing.data import write_examples
from testing.evaluation import OracleDetector, write_oracle_model
from tests.components.evaluator.runs import run_evaluator as _run

NOISY = {"jitter": 0.03, "keep": 0.8, "false_positives": 3}


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory):
    return write_examples(
        str(tmp_path_factory.mktemp("ev") / "examples"), 60, seed=11, splits={"train": 10, "eval": 50}
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "perfect": write_oracle_model(str(root / "perfect" / "Format-Serving")),
        "noisy": write_oracle_model(str(root / "noisy" / "Format-Serving"), **NOISY),
    }


def test_first_push_metrics_match_pycocotools_and_value_threshold_blesses(tmp_path, examples_dir, models):
    report, blessing = _run(tmp_path, examples_dir, models["noisy"], push_destination=str(tmp_path / "none"))
    eval_examples = read_examples(os.path.join(examples_dir, "Split-eval", "*"))
    reference = evaluate(tf.saved_model.load(models["noisy"]).signatures["tf_example"], eval_examples, num_classes=3)
    m = report.metrics
    # TFMA's reported numbers agree with pycocotools' COCOeval on the same predictions.
    assert abs(m["map"] - reference.map) < 0.01 and abs(m["map_50"] - reference.map_50) < 0.01
    assert abs(m["map_75"] - reference.map_75) < 0.01 and abs(m["ar_100"] - reference.ar_100) < 0.01
    for label, name in enumerate(["circle", "square", "triangle"], start=1):
        assert abs(m[f"ap/{name}"] - reference.ap_per_class[label]) < 0.01
    assert m["example_count"] == 50 and 0.3 < m["map_50"] < 0.95, m
    assert report.blessed and report.reasons == [] and report.baseline_version is None
    assert blessing.get_int_custom_property(tfx_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
    assert os.path.exists(os.path.join(blessing.uri, tfx_constants.BLESSED_FILE_NAME))
    assert any(name.startswith("detx/stats/num_objects=") for name in report.slices)  # the sliced view exists


def test_below_the_floor_is_not_blessed(tmp_path, examples_dir, models):
    report, blessing = _run(tmp_path, examples_dir, models["noisy"], baseline="none", min_map_50=0.99)
    assert not report.blessed
    assert len(report.reasons) == 1 and "below the floor 0.990" in report.reasons[0]
    assert os.path.exists(os.path.join(blessing.uri, tfx_constants.NOT_BLESSED_FILE_NAME))


def test_worse_than_production_is_not_blessed_and_better_is(tmp_path, examples_dir, models):
    dest = str(tmp_path / "dest")
    ModelStore(dest).push(models["perfect"], {})
    report, blessing = _run(tmp_path / "a", examples_dir, models["noisy"], push_destination=dest, min_map_50=0.1)
    assert not report.blessed and report.baseline_version == 1
    assert report.baseline_metrics["map_50"] == pytest.approx(1.0)
    assert len(report.reasons) == 1 and "below production version 1 (1.000)" in report.reasons[0]
    assert blessing.get_int_custom_property("baseline_version") == 1
    # Production's numbers per slice, on the same examples, for the model card (a perfect model: 1.0 where boxes are).
    assert set(report.baseline_slices) == set(report.slices)
    assert all(v["map_50"] == pytest.approx(1.0) for v in report.baseline_slices.values() if v.get("map_50", -1) >= 0)

    rolled = str(tmp_path / "dest2")
    ModelStore(rolled).push(models["noisy"], {})
    # With the simpler reference too: three models in one TFMA run, the thresholds on the candidate only.
    report, _ = _run(
        tmp_path / "b", examples_dir, models["perfect"], push_destination=rolled, simpler_reference="box_prior"
    )
    assert report.blessed and report.baseline_version == 1 and report.metrics["map_50"] == pytest.approx(1.0)
    assert "compared with production version 1" in report.verdict()
    assert report.margin == pytest.approx(1.0 - report.reference_metrics["map_50"]) and report.margin > 0.5
    assert report.baseline_metrics["map_50"] < 1.0 and report.reference_metrics["map_50"] < 0.3


def test_a_baseline_without_the_tf_example_signature_is_a_clear_error(tmp_path, examples_dir, models):
    foreign = str(tmp_path / "foreign")
    module = OracleDetector()
    tf.saved_model.save(module, foreign, signatures={"serving_default": module.detect_examples.get_concrete_function()})
    dest = str(tmp_path / "dest")
    ModelStore(dest).push(foreign, {})
    with pytest.raises(BaselineError, match="has no 'tf_example' signature"):
        _run(tmp_path / "c", examples_dir, models["noisy"], push_destination=dest)
