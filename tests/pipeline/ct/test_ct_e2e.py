"""One drift-triggered retraining, for real: spans, `detx ct check`, `detx ct run` (LocalDagRunner, TFMA, Pusher).

Production starts as a weak model (random weights, exported by detx) trained
on span 1, with span 1's statistics; it has no training weights (exported
without them), so the first retraining cannot warm-start from it and starts
from trainer.pretrained (nothing), saying why. A darker span with a different
class mix arrives: the check fires on drift; the triggered run trains on spans
2-3, beats production on the new eval split and is pushed as version 2, with
the training weights the Trainer wrote, unchanged through the InfraValidator
and the Pusher. Running again changes nothing. A third, still darker span
triggers again; that retraining warm-starts from version 2, but a model below
the blessing floor is not pushed.
"""

from __future__ import annotations

import filecmp
import json
import os

import pytest
from click.testing import CliRunner

from detx.components.data import spans
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.synth import SynthConfig, write_dataset
from detx.components.evaluation import score_profile
from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore
from detx.components.trainer import training_weights
from detx.pipeline.cli import main
from detx.pipeline.ct import stats
from detx.pipeline.ct.state import State
from tests.serving.conftest import export_tiny

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_drift_triggers_one_retraining_that_is_pushed_only_when_it_beats_production(tmp_path):
    data, project = str(tmp_path / "spans"), str(tmp_path / "project")
    source = str(tmp_path / "deliveries")
    span1 = write_dataset(f"{source}/1", SynthConfig(num_images=100, seed=21, min_size=48), "coco").out_dir
    spans.add_span(data, span1)
    # Production: version 1, trained on span 1 (here: untrained weights), with span 1's statistics.
    weak = export_tiny(str(tmp_path / "weak"))
    reference = stats.span_statistics(data, [1], IngestOptions(span_window=1)).statistics
    dest = os.path.join(project, "models", "detx")
    ModelStore(dest).push(
        weak,
        {"data": {"source": data, "spans": [1]}},
        extra_files={TRAIN_STATS_FILENAME: reference.SerializeToString()},
    )
    common = ["--data", data, "--project", project, "--span-window", "2"]
    run = ["ct", "run", *common, "--preset", "tiny", "--min-map50", "0"]

    # A delivery from the same generator is no reason to retrain.
    same = write_dataset(f"{source}/same", SynthConfig(num_images=50, seed=22, min_size=48), "coco").out_dir
    _cli("data", "add-span", same, "--data", data)
    out = _cli("ct", "check", *common)
    assert "no retraining needed" in out and "span 2: 50 new images" in out

    # A darker delivery with mostly circles drifts.
    shifted = SynthConfig(num_images=140, seed=23, min_size=48, brightness=0.5, class_weights=(4, 1, 1))
    _cli("data", "add-span", write_dataset(f"{source}/3", shifted, "coco").out_dir, "--data", data)
    out = _cli("ct", "check", *common)
    assert "TRIGGER drift: brightness: Jensen-Shannon" in out and "TRIGGER drift: class mix" in out
    assert "retrain on spans 2-3" in out

    out = _cli(*run, "--train-steps", "150")
    assert "pushed version 2" in out, out
    assert "starting weights: nothing (from scratch) (trainer.pretrained): version 1 served from" in out
    assert "has no training weights" in out
    assert "_diff" not in out  # the summary lists classes, not TFMA's candidate-minus-baseline keys
    store = ModelStore(dest)
    assert store.serving_version() == 2
    lineage = store.lineage(2)
    assert lineage["data"]["spans"] == [2, 3] and lineage["data"]["span"] == 3
    assert lineage["baseline"]["version"] == 1
    assert lineage["metrics"]["map_50"] > lineage["baseline"]["metrics"]["map_50"]  # it beat production
    assert 0 < lineage["metrics"][score_profile.TOP_SCORE] <= 1  # the live-quality reference
    assert os.path.exists(os.path.join(store.path(2), TRAIN_STATS_FILENAME))
    assert lineage["training"]["warm_start"] is None and lineage["training"]["pretrained_setting"] == ""
    # The Trainer's training weights reach the pushed version byte for byte (InfraValidator copy, then Pusher).
    trained, pushed = (
        os.path.join(d, training_weights.WEIGHTS_DIR)
        for d in (os.path.join(lineage["model"]["uri"], "Format-Serving"), store.path(2))
    )
    names = sorted(os.listdir(trained))
    assert names == ["weights.data-00000-of-00001", "weights.index", "weights.json"]
    assert filecmp.cmpfiles(trained, pushed, names, shallow=False)[0] == names

    # Nothing changed: no second retraining.
    out = _cli(*run, "--train-steps", "150")
    assert "no span newer than 3" in out and "detx ct run: no trigger fired" in out

    # Darker still: drift against version 2's own training data fires again ...
    darker = SynthConfig(num_images=60, seed=24, min_size=48, brightness=0.25, class_weights=(4, 1, 1))
    _cli("data", "add-span", write_dataset(f"{source}/4", darker, "coco").out_dir, "--data", data)
    out = _cli(*run, "--train-steps", "3", "--min-map50", "0.99")
    assert "TRIGGER drift: brightness" in out
    # ... and the retraining builds on version 2 (a warm start: a quarter of the steps) ...
    assert "starting weights: version 2, the served version (a warm start)" in out, out
    assert "warm start from version 2: 1 of 3 steps" in out and "restored 340 weights of version 2" in out
    # ... but what it made is below the blessing floor: not pushed.
    assert "not pushed" in out and "version 2 stays in production" in out, out
    assert ModelStore(dest).serving_version() == 2
    attempts = State(os.path.join(project, "ct")).attempts()
    assert [a.outcome.split(" (")[0] for a in attempts] == ["pushed version 2", "not pushed"]
    assert attempts[-1].key == "served=2;spans=3,4"
    # The same situation again is recorded as tried: nothing starts.
    out = _cli(*run, "--train-steps", "3", "--min-map50", "0.99")
    assert "already ran" in out and "served=2;spans=3,4" in out
    assert len(State(os.path.join(project, "ct")).attempts()) == 2
    assert json.loads(_cli("ct", "check", *common, "--json"))["key"] == "served=2;spans=3,4"
