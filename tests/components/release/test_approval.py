"""Approval of pending candidates on a real push destination, with real models re-checked on a real eval split."""

import pytest

from detx.components.model_store import ModelStore, ModelStoreError
from detx.components.release import approval
from detx.components.release.catalog import describe
from detx.components.release.recheck import recheck
from testing.data import write_examples
from testing.evaluation import write_oracle_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Oracle detectors on the eval split: one near-perfect, one that misses most boxes; and the examples."""
    root = tmp_path_factory.mktemp("release")
    examples = write_examples(str(root / "examples"), 20, seed=5)
    good = write_oracle_model(str(root / "good"), jitter=0.005)
    poor = write_oracle_model(str(root / "poor"), keep=0.2)
    return {"examples": examples, "good": good, "poor": poor}


def _lineage(models, baseline_version):
    return {
        "model": {"uri": f"model-{baseline_version}"},
        "data": {"examples_uri": models["examples"]},
        "baseline": {"version": baseline_version},
        "thresholds": {"min_map_50": 0.1, "max_map_50_drop": 0.01},
        "approval": {"required": True, "state": "pending"},
    }


def test_approve_serves_the_candidate_and_records_who_when_and_why(tmp_path, models):
    store = ModelStore(str(tmp_path / "dest"))
    store.push(models["good"], {"note": "production"})
    candidate = store.push(models["good"], _lineage(models, 1), pending=True)
    assert candidate.version == 2 and store.serving_version() == 1
    assert [r["version"] for r in describe(store) if r["pending"]] == [2]
    calls = []
    decision = approval.approve(store, 2, "ana", "reviewed the card", lambda *a: calls.append(a) or {})
    assert decision.state == "approved" and decision.previous == 1 and not calls  # production unchanged: no re-check
    assert store.serving_version() == 2 and store.pending_versions() == []
    record = store.lineage(2)["approval"]
    assert record["state"] == "approved" and record["by"] == "ana" and record["reason"] == "reviewed the card"
    assert record["at"]
    with pytest.raises(ModelStoreError, match="not waiting for approval"):
        approval.approve(store, 2, "ana", "again", recheck)


def test_a_candidate_older_than_the_served_version_cannot_be_approved(tmp_path, models):
    store = ModelStore(str(tmp_path / "dest"))
    store.push(models["good"], {})  # 1
    store.push(models["good"], _lineage(models, 1), pending=True)  # 2, waiting
    store.push(models["good"], {})  # 3, pushed straight while approval was off
    with pytest.raises(ModelStoreError, match="version 3, newer than candidate 2"):
        approval.approve(store, 2, "ana", "ship it", recheck)
    assert store.pending_versions() == [2] and store.serving_version() == 3


def test_recheck_scores_both_models_on_the_candidates_eval_split(tmp_path, models):
    store = ModelStore(str(tmp_path / "dest"))
    store.push(models["good"], {})  # 1 served; the candidates below were evaluated when nothing was
    poor = store.push(models["poor"], _lineage(models, None), pending=True)  # 2
    refused = approval.approve(store, poor.version, "ana", "looks fine", recheck)
    assert refused.state == "refused" and store.serving_version() == 1 and store.pending_versions() == [2]
    checked = refused.recheck
    assert checked["against"] == 1 and checked["candidate_map_50"] < checked["production_map_50"] - 0.01
    assert any("below version 1's" in r for r in checked["reasons"])
    assert store.lineage_at(store.pending_path(2))["approval"]["recheck"]["blessed"] is False
    rejected = approval.reject(store, 2, "ana", "worse than production")
    assert rejected.state == "rejected" and store.retired_versions() == [2]
    good = store.push(models["good"], _lineage(models, None), pending=True)  # 3
    approved = approval.approve(store, good.version, "ana", "re-checked", recheck)
    assert approved.state == "approved" and approved.recheck["blessed"] and store.serving_version() == 3


def test_a_decision_needs_a_name_and_a_reason_and_a_gone_eval_split_refuses(tmp_path, models):
    store = ModelStore(str(tmp_path / "dest"))
    store.push(models["good"], {})
    lineage = {**_lineage(models, None), "data": {"examples_uri": str(tmp_path / "gone")}}
    store.push(models["good"], lineage, pending=True)
    with pytest.raises(ModelStoreError, match="needs a name"):
        approval.reject(store, 2, " ", "why")
    refused = approval.approve(store, 2, "ana", "ok", recheck)
    assert refused.state == "refused" and "cannot be re-checked" in refused.recheck["reasons"][0]
