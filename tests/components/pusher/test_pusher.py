"""DetectionPusher's executor: pushes blessed models once, with lineage; refuses the rest."""

import json
import os

import pytest
from tfx.components.evaluator import constants as tfx_constants
from tfx.types import standard_artifacts

from detx.components.evaluator.report import EvaluationReport
from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore, ModelStoreError
from detx.components.pusher import executor
from testing.data import write_examples


def _artifacts(tmp_path, blessed, fake_saved_model, model_uri=None):
    model = standard_artifacts.Model()
    model.uri = model_uri or str(tmp_path / "model")
    if not os.path.exists(os.path.join(model.uri, "Format-Serving")):
        fake_saved_model(os.path.join(model.uri, "Format-Serving"))
    model.id = 11
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / f"blessing-{blessed}")
    os.makedirs(blessing.uri, exist_ok=True)
    blessing.set_int_custom_property(tfx_constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(blessed))
    blessing.set_string_custom_property(tfx_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    EvaluationReport(
        blessed=blessed,
        reasons=[] if blessed else ["mAP@0.5 0.100 is below the floor 0.300"],
        metrics={"map": 0.5, "map_50": 0.8 if blessed else 0.1},
        baseline_version=None,
        baseline_path=None,
        baseline_metrics={},
        min_map_50=0.3,
        max_map_50_drop=0.01,
    ).write(blessing.uri)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.span = 3
    if not os.path.exists(examples.uri):
        write_examples(examples.uri, 4)  # real splits and label map: the model card counts them
    with open(os.path.join(examples.uri, "ingest_summary.json"), "w") as f:
        json.dump({"input_base": "/data/coco", "num_examples": 400, "num_rejected": 2}, f)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed-{blessed}-{len(os.listdir(tmp_path))}")
    return {"model": [model], "model_blessing": [blessing], "examples": [examples]}, {"pushed_model": [pushed]}


def _push(tmp_path, dest, blessed, fake_saved_model):
    inputs, outputs = _artifacts(tmp_path, blessed, fake_saved_model)
    executor.Executor().Do(inputs, outputs, {executor.PUSH_DESTINATION: dest})
    pushed = outputs["pushed_model"][0]
    with open(os.path.join(pushed.uri, executor.PUSH_REPORT_FILENAME)) as f:
        return pushed, json.load(f)


def test_the_training_statistics_and_spans_are_pushed_with_the_model(tmp_path, fake_saved_model):
    inputs, outputs = _artifacts(tmp_path, True, fake_saved_model)
    with open(os.path.join(inputs["examples"][0].uri, "ingest_summary.json"), "w") as f:
        json.dump({"input_base": "/data/spans", "spans": [2, 3]}, f)
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")
    statistics.split_names = '["train", "eval"]'
    for split, content in (("train", b"train statistics"), ("eval", b"eval statistics")):
        os.makedirs(os.path.join(statistics.uri, f"Split-{split}"))
        with open(os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"), "wb") as f:
            f.write(content)
    dest = str(tmp_path / "dest")
    executor.Executor().Do({**inputs, "statistics": [statistics]}, outputs, {executor.PUSH_DESTINATION: dest})
    store = ModelStore(dest)
    with open(os.path.join(store.path(1), TRAIN_STATS_FILENAME), "rb") as f:
        assert f.read() == b"train statistics"  # the split the model was trained on
    assert store.lineage(1)["data"]["spans"] == [2, 3]


def test_blessed_model_is_pushed_once_with_its_lineage(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    pushed, record = _push(tmp_path, dest, True, fake_saved_model)
    assert record["pushed"] and record["version"] == 1 and pushed.get_int_custom_property(executor.PUSHED) == 1
    assert pushed.get_string_custom_property(executor.PUSHED_VERSION) == "1"
    lineage = ModelStore(dest).lineage(1)
    assert lineage["model"]["uri"] == str(tmp_path / "model")
    assert lineage["data"] == {
        "examples_uri": str(tmp_path / "examples"),
        "examples_artifact_id": 0,
        "span": 3,
        "source": "/data/coco",
        "num_examples": 400,
        "num_rejected": 2,
        "spans": [],
    }
    assert lineage["metrics"]["map_50"] == 0.8 and lineage["baseline"]["version"] is None
    # The same model again (e.g. the Evaluator re-ran after a cache miss): served already, not pushed twice.
    pushed, record = _push(tmp_path, dest, True, fake_saved_model)
    assert not record["pushed"] and "already served as version 1" in record["reason"]
    assert ModelStore(dest).complete_versions() == [1]


def test_unblessed_model_is_not_pushed(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    pushed, record = _push(tmp_path, dest, False, fake_saved_model)
    assert not record["pushed"] and "below the floor" in record["reason"] and record["served_before"] is None
    assert pushed.get_int_custom_property(executor.PUSHED) == 0
    assert not os.path.exists(dest) or ModelStore(dest).versions() == []


def test_a_blessing_for_another_model_is_refused(tmp_path, fake_saved_model):
    inputs, outputs = _artifacts(tmp_path, True, fake_saved_model)
    inputs["model_blessing"][0].set_string_custom_property(
        tfx_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, "/elsewhere/model"
    )
    with pytest.raises(ModelStoreError, match="is for /elsewhere/model"):
        executor.Executor().Do(inputs, outputs, {executor.PUSH_DESTINATION: str(tmp_path / "dest")})
