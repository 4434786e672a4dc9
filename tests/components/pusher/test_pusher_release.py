"""The Pusher with an InfraValidator and with approval required: what is pushed, where, with which card."""

import json
import os

from tfx.types import standard_artifacts
from tfx.utils import path_utils

from detx.components import warmup
from detx.components.infra_validator.report import HAS_MODEL_KEY, InfraReport
from detx.components.model_card.render import CARD_HTML, CARD_MD
from detx.components.model_store import ModelStore
from detx.components.pusher import executor
from tests.components.pusher.test_pusher import _artifacts


def _infra(tmp_path, blessed, fake_saved_model):
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / f"infra-{blessed}")
    report = InfraReport(
        blessed=blessed,
        reasons=[] if blessed else ["p99 latency 900 ms at concurrency 2 is above infra_validator.max_p99_ms 500"],
        server="detx serve",
        load_seconds=3.0,
        p99_ms=900.0,
    )
    report.write(blessing.uri)
    stamped = path_utils.stamped_model_path(blessing.uri)
    if blessed and not os.path.exists(stamped):  # the InfraValidator's copy of the model, with its warm-up file
        fake_saved_model(stamped)
        os.makedirs(os.path.dirname(warmup.path_in(stamped)))
        with open(warmup.path_in(stamped), "wb") as f:
            f.write(b"records")
    if blessed:
        blessing.set_int_custom_property(HAS_MODEL_KEY, 1)
    return blessing


def _run(tmp_path, dest, fake_saved_model, infra_blessed=True, approval="none", model_uri=None):
    inputs, outputs = _artifacts(tmp_path, True, fake_saved_model, model_uri=model_uri)
    inputs["infra_blessing"] = [_infra(tmp_path, infra_blessed, fake_saved_model)]
    properties = {executor.PUSH_DESTINATION: dest, "approval": approval, "release": json.dumps({"limitations": "L"})}
    executor.Executor().Do(inputs, outputs, properties)
    with open(os.path.join(outputs["pushed_model"][0].uri, executor.PUSH_REPORT_FILENAME)) as f:
        return json.load(f)


def test_the_infra_validated_copy_with_its_warmup_file_is_pushed_with_a_card(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    record = _run(tmp_path, dest, fake_saved_model)
    store = ModelStore(dest)
    assert record["pushed"] and store.serving_version() == 1
    assert os.path.exists(warmup.path_in(store.path(1)))  # TF Serving replays it before serving version 1
    lineage = store.lineage(1)
    assert lineage["infra_validation"]["server"] == "detx serve" and lineage["infra_validation"]["blessed"]
    assert lineage["approval"] == {"required": False, "state": "not required"}
    assert lineage["data_facts"]["splits"]  # counted from the real examples
    with open(os.path.join(store.path(1), CARD_MD)) as f:
        card = f.read()
    assert "Version 1" in card or "version 1" in card.lower()
    assert "L" in card and os.path.exists(os.path.join(store.path(1), CARD_HTML))


def test_a_model_that_is_not_infra_blessed_is_not_pushed(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    record = _run(tmp_path, dest, fake_saved_model, infra_blessed=False)
    assert not record["pushed"] and "above infra_validator.max_p99_ms" in record["reason"]
    assert ModelStore(dest).versions() == []


def test_with_approval_required_the_model_waits_and_a_newer_candidate_supersedes_it(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    first = _run(tmp_path / "a", dest, fake_saved_model, approval="required")
    store = ModelStore(dest)
    assert first["pushed"] and first["pending"] and first["version"] == 1
    assert store.serving_version() is None and store.pending_versions() == [1]  # no model server loads it
    assert store.lineage_at(store.pending_path(1))["approval"]["state"] == "pending"
    again = _run(tmp_path / "a", dest, fake_saved_model, approval="required", model_uri=str(tmp_path / "a" / "model"))
    assert not again["pushed"] and "already waiting for approval as version 1" in again["reason"]
    second = _run(tmp_path / "b", dest, fake_saved_model, approval="required")
    assert second["version"] == 2 and second["superseded"] == [1]
    assert store.pending_versions() == [2] and store.retired_versions() == [1]
    retired = store.lineage_at(os.path.join(dest, ".retired", "1"))["approval"]
    assert retired["state"] == "superseded" and "candidate 2" in retired["reason"]


def test_the_tflite_models_that_ship_travel_in_assets_extra_and_the_lineage_names_all(tmp_path, fake_saved_model):
    from detx.components.tflite.component import TFLiteModels
    from detx.components.tflite.report import ModelEntry, TFLiteReport

    folder = tmp_path / "tflite"
    (folder / "rejected").mkdir(parents=True)
    (folder / "detector_float32.tflite").write_bytes(b"float model")
    (folder / "rejected" / "detector_int8.tflite").write_bytes(b"int8 model")
    entries = [
        ModelEntry("float32", "detector_float32.tflite", 11, 1.0, 0.71, 0.4, 0.0, True, "float models always ship"),
        ModelEntry("int8", "rejected/detector_int8.tflite", 10, 0.3, 0.5, 0.3, 0.21, False, "0.21 below"),
    ]
    TFLiteReport({"map_50": 0.71, "preset": "tiny", "variables_bytes": 12}, 5, 4, {}, entries).write(str(folder))
    artifact = TFLiteModels()
    artifact.uri = str(folder)
    inputs, outputs = _artifacts(tmp_path, True, fake_saved_model)
    inputs["tflite_models"] = [artifact]
    dest = str(tmp_path / "dest")
    executor.Executor().Do(inputs, outputs, {executor.PUSH_DESTINATION: dest})
    version = ModelStore(dest).path(1)
    with open(os.path.join(version, "assets.extra", "tflite", "detector_float32.tflite"), "rb") as f:
        assert f.read() == b"float model"
    assert not os.path.exists(os.path.join(version, "assets.extra", "tflite", "detector_int8.tflite"))
    assert os.path.exists(os.path.join(version, "assets.extra", "tflite", "tflite_report.json"))
    models = ModelStore(dest).lineage(1)["tflite"]["models"]
    assert models["float32"]["shipped"] and models["float32"]["path"] == "assets.extra/tflite/detector_float32.tflite"
    assert not models["int8"]["shipped"] and models["int8"]["reason"] == "0.21 below"
    from click.testing import CliRunner

    from detx.pipeline.cli import main

    listing = CliRunner().invoke(main, ["models", "list", "--push-destination", dest])
    assert "tflite float32" in listing.output and "int8" not in listing.output
