"""`detx models approve`, `reject` and `list` on pending candidates, through the real command line."""

import pytest
from click.testing import CliRunner

from detx.components.model_store import ModelStore
from detx.pipeline import run_parameters
from detx.pipeline.cli import main


def _store(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    model = fake_saved_model(str(tmp_path / "model"))
    store.push(model, {"metrics": {"map_50": 0.5}})  # 1, served
    for _ in range(2):  # 2 and 3, waiting; evaluated against version 1 (served still: no re-check needed)
        store.push(model, {"metrics": {"map_50": 0.6}, "baseline": {"version": 1}}, pending=True)
    return dest, store


def test_models_lists_pending_candidates_and_approve_serves_one(tmp_path, fake_saved_model):
    dest, store = _store(tmp_path, fake_saved_model)

    def models(*args):
        return CliRunner().invoke(main, ["models", *args, "--push-destination", dest])

    listing = models("list")
    assert listing.exit_code == 0, listing.output
    assert "waiting for approval (detx models approve 3 / detx models reject 3)" in listing.output
    assert "serving" in listing.output
    missing = models("approve", "3", "--by", "ana")
    assert missing.exit_code != 0 and "--reason" in missing.output
    result = models("approve", "3", "--by", "ana", "--reason", "card ok")
    assert result.exit_code == 0, result.output
    assert "Approved version 3 by ana: now served (was 1)" in result.output
    assert store.serving_version() == 3 and store.lineage(3)["approval"]["by"] == "ana"
    # Version 2 is older than what is served now: it cannot be approved any more, only rejected.
    refused = models("approve", "2", "--by", "ana", "--reason", "x")
    assert refused.exit_code == 1 and "newer than candidate 2" in refused.output
    rejected = models("reject", "2", "--by", "bo", "--reason", "stale")
    assert rejected.exit_code == 0 and "retired" in rejected.output
    assert store.pending_versions() == [] and store.retired_versions() == [2]


def test_the_approval_run_parameter_takes_only_its_modes():
    assert run_parameters.parse_overrides(["approval=required"]) == {"approval": "required"}
    with pytest.raises(ValueError, match="expected one of none, required"):
        run_parameters.parse_overrides(["approval=maybe"])
