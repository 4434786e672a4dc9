"""Floors on classes and COCO object sizes, and the margin over a simpler model, on real TFMA runs (issue 19)."""

import math
import os

import pytest
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import constants as tfx_constants
from tfx.types import artifact_utils, standard_artifacts

from detx.components.evaluator import simpler_reference
from detx.components.evaluator.options import EvaluatorOptions
from testing.data import write_examples
from testing.evaluation import write_oracle_model
from tests.components.evaluator.runs import run_evaluator

SMALL = "small objects (area <= 32² px)"
MEDIUM = "medium objects (area 32² to 96² px)"
LARGE = "large objects (area >= 96² px)"


@pytest.fixture(scope="module")
def bad_slice_run(tmp_path_factory):
    """A detector blind to triangles and to small objects, judged with floors on both and a margin."""
    root = tmp_path_factory.mktemp("bad")
    examples = write_examples(str(root / "examples"), 70, seed=11, splits={"train": 30, "eval": 40})
    model = write_oracle_model(str(root / "model" / "Format-Serving"), blind_class=3, blind_below=32**2)
    return run_evaluator(
        root,
        examples,
        model,
        baseline="none",
        class_ap_floors={"*": 0.5},
        area_ap_floors={"small": 0.3, "medium": 0.5},
        simpler_reference="box_prior",
        min_margin=0.99,
    )


def test_a_bad_class_and_a_bad_size_fail_the_blessing_by_name(bad_slice_run):
    report, blessing = bad_slice_run
    # The whole split clears its floor: only the slices stop this model.
    assert report.metrics["map_50"] >= report.min_map_50
    assert not report.blessed
    assert os.path.exists(os.path.join(blessing.uri, tfx_constants.NOT_BLESSED_FILE_NAME))
    floors = report.slice_floors
    triangle, small = floors["class 'triangle'"], floors[SMALL]
    assert triangle["status"] == "failed" and triangle["value"] == 0.0 and triangle["boxes"] > 0
    assert small["status"] == "failed" and small["value"] == 0.0 and small["boxes"] > 0
    assert floors["class 'circle'"]["status"] == floors["class 'square'"]["status"] == floors[MEDIUM]["status"]
    assert floors[MEDIUM]["status"] == "passed" and set(floors) == {
        "class 'circle'",
        "class 'square'",
        *{"class 'triangle'", SMALL, MEDIUM},
    }
    assert f"AP@0.5 of class 'triangle' 0.000 is below its floor 0.500 ({triangle['boxes']} boxes)" in report.reasons
    assert f"mAP@0.5 of {SMALL} 0.000 is below its floor 0.300 ({small['boxes']} boxes)" in report.reasons
    assert "class 'triangle'" in report.verdict() and SMALL in report.verdict()
    # TFMA's own validator made those calls: its failures name the two metrics.
    validation = tfma.load_validation_result(os.path.join(os.path.dirname(blessing.uri), "evaluation"))
    failed = {f.metric_key.name for s in validation.metric_validations_per_slice for f in s.failures}
    assert failed == {"ap_50/triangle", "map_50/area=small"}


def test_the_margin_over_the_simpler_reference_is_reported_and_its_floor_applies(bad_slice_run):
    report, _ = bad_slice_run
    assert report.simpler_reference == "box_prior"
    reference = report.reference_metrics["map_50"]
    assert 0.0 <= reference < 0.3  # a detector that ignores the pixels
    assert report.margin == pytest.approx(report.metrics["map_50"] - reference)
    assert report.min_margin == 0.99
    assert f"mAP@0.5 is only {report.margin:+.3f} above the simpler reference's ({reference:.3f}); " in (
        "; ".join(report.reasons)
    )


def test_empty_slices_never_fail_a_run(tmp_path):
    """No triangle and no small or medium object in the split: those floors are not judged, the rest pass."""
    examples = write_examples(
        str(tmp_path / "examples"),
        40,
        seed=12,
        splits={"train": 15, "eval": 25},
        class_weights=(1.0, 1.0, 0.0),
        min_size=110,
    )
    model = write_oracle_model(str(tmp_path / "model" / "Format-Serving"))
    floors = {"small": 0.9, "medium": 0.9, "large": 0.9}
    report, blessing = run_evaluator(
        tmp_path,
        examples,
        model,
        baseline="none",
        class_ap_floors={"*": 0.9},
        area_ap_floors=floors,
        simpler_reference="box_prior",
        min_margin=0.5,
    )
    assert report.blessed, report.reasons
    assert os.path.exists(os.path.join(blessing.uri, tfx_constants.BLESSED_FILE_NAME))
    for name in ("class 'triangle'", SMALL, MEDIUM):
        result = report.slice_floors[name]
        assert result["boxes"] == 0 and math.isnan(result["value"])
        assert result["status"] == "not judged: no box in the eval split"
    assert report.slice_floors[LARGE]["status"] == report.slice_floors["class 'circle'"]["status"] == "passed"
    assert report.margin >= 0.5 and report.metrics["map_50"] == pytest.approx(1.0)
    assert "slice floors: 3 passed, 3 without boxes" in report.verdict()
    assert "above the simpler reference (box_prior)" in report.verdict()
    # TFMA itself fails a lower bound on NaN; the Evaluator reads those failures as "not judged".
    validation = tfma.load_validation_result(str(tmp_path / "evaluation"))
    assert not validation.validation_ok


def test_the_box_prior_without_a_train_split_is_a_clear_error(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    with pytest.raises(ValueError, match=r"fitted on the train split, and the examples have none \(splits: eval\)"):
        simpler_reference.build(EvaluatorOptions(simpler_reference="box_prior"), [examples], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # nothing written
