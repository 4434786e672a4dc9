"""The controller against the model server's real metrics page and a real push destination: every decision."""

from __future__ import annotations

import json
import os

import pytest

from detx.components.model_store import ModelStore
from detx.components.release.rollout.controller import Rollout, RolloutError
from detx.components.release.rollout.local import LocalTarget, ServerMetricsSource
from detx.components.release.rollout.signals import SignalError
from detx.components.release.rollout.state import read_state
from detx.components.release.traffic import TrafficSplit, read_traffic, write_traffic

FAST = {"min_requests": 20, "shadow_percent": 100.0, "canary_percent": 50.0, "poll_seconds": 0.01}


def _rollout(store, page, said=None):
    out = said if said is not None else []
    return Rollout(
        store, LocalTarget(store.root), ServerMetricsSource(page.url, "detx"), say=out.append, sleep=lambda _: None
    )


def test_a_good_candidate_goes_shadow_canary_full_and_its_lineage_says_so(store, page):
    page.answers(1, "stable", 500)  # traffic before the rollout does not count
    said: list[str] = []
    rollout = _rollout(store, page, said)
    state = rollout.start(2, FAST)
    assert state.stage == "shadow" and state.stable == 1
    assert read_traffic(store.root) == TrafficSplit(1, 2, shadow_percent=100.0)
    page.answers(1, "stable", 20)
    page.answers(2, "shadow", 10)
    page.compared(1, 2, 10)
    state = rollout.step(state)
    assert state.stage == "shadow" and said[-1] == "shadow: 10 of 20 requests judged; holding"
    page.answers(2, "shadow", 10)
    page.compared(1, 2, 10)
    state = rollout.step(state)
    assert state.stage == "canary"
    assert read_traffic(store.root) == TrafficSplit(1, 2, canary_percent=50.0)
    passed = said[-2]
    assert "version 2 (stable 1): passed shadow stage on 20 requests" in passed
    assert "agreement: 1.00 over 20 compared requests (60 detections matched" in passed
    assert "traffic: " in said[-1] and "-> stable 1, candidate 2: 50% of requests answered by it" in said[-1]
    page.answers(1, "stable", 20)
    page.answers(2, "canary", 20)
    state = rollout.follow(state)
    assert state.stage == "promoted" and state.reason == "passed the shadow and canary stages"
    assert read_traffic(store.root) == TrafficSplit(2)  # a pin: a version pushed meanwhile waits for its rollout
    assert store.serving_version() == 2 and store.complete_versions() == [1, 2]
    lineage = store.lineage(2)["rollout"]
    assert lineage["state"] == "promoted" and lineage["stable"] == 1
    assert [d["decision"] for d in lineage["decisions"]] == ["started", "passed", "started", "passed", "promoted"]
    assert read_state(store.root).decisions == lineage["decisions"]


def test_a_disagreeing_candidate_is_rolled_back_retired_and_the_reason_kept(store, page):
    rollout = _rollout(store, page)
    state = rollout.start(2, FAST)
    page.answers(1, "stable", 20)
    page.answers(2, "shadow", 20)
    page.compared(1, 2, 20, matched=1, only_stable=2, only_candidate=2)
    state = rollout.step(state)
    assert state.stage == "rolled back" and state.reason.startswith("shadow stage failed: agreement: 0.20 over 20")
    assert read_traffic(store.root) == TrafficSplit(1)
    assert store.complete_versions() == [1] and store.retired_versions() == [2]
    retired = ModelStore.lineage_at(os.path.join(store.root, ".retired", "2"))["rollout"]
    assert retired["state"] == "rolled back" and "agreement: 0.20" in retired["reason"]
    assert retired["decisions"][-1]["figures"][2].endswith("-> FAILS")
    with pytest.raises(RolloutError, match="version 2 is retired"):
        rollout.start(2, FAST)


def test_a_failing_canary_rolls_back_before_min_requests(store, page):
    rollout = _rollout(store, page)
    state = rollout.start(2, {**FAST, "shadow_percent": 0.0})
    assert state.stage == "canary"
    page.answers(1, "stable", 10)
    page.answers(2, "canary", 3, code="INTERNAL")
    state = rollout.step(state)
    assert state.stage == "rolled back" and "error rate: 100.0% (3 of 3" in state.reason


def test_a_restarted_command_continues_with_the_recorded_baseline_and_options(store, page):
    page.answers(1, "stable", 100)
    first = _rollout(store, page)
    first.start(2, FAST)
    page.answers(1, "stable", 15)
    page.answers(2, "shadow", 15)
    page.compared(1, 2, 15)
    said: list[str] = []
    again = _rollout(store, page, said)  # a new process: everything from the state file
    state = again.start(2)
    assert said == ["Continuing the rollout of version 2 against stable 1: shadow stage since " + state.stage_started]
    verdict, restarted = again.judge(state)
    assert verdict.judged == 15 and not restarted
    with pytest.raises(RolloutError, match="started with min_requests=20; a rollout keeps its criteria"):
        again.start(2, {"min_requests": 5})
    with pytest.raises(RolloutError, match=r"being rolled out \(shadow stage since .*one rollout at a time"):
        again.start(1)


def test_a_restarted_server_counts_afresh(store, page):
    page.answers(1, "stable", 100)
    page.answers(2, "shadow", 100)
    rollout = _rollout(store, page)
    state = rollout.start(2, FAST)
    page.close()
    fresh = type(page)()  # a new server process: counters begin at 0
    try:
        said: list[str] = []
        rollout = _rollout(store, fresh, said)
        fresh.answers(1, "stable", 5)
        fresh.answers(2, "shadow", 5)
        state = rollout.step(state)
        assert said[0].startswith("The counts went back (the model server restarted)")
        assert said[1] == "shadow: 5 of 20 requests judged; holding"
    finally:
        fresh.close()


def test_refusals_say_what_to_do(store, page, fake_saved_model, tmp_path):
    write_traffic(store.root, None)
    rollout = _rollout(store, page)
    with pytest.raises(RolloutError, match=r"version 2 is the version served now .*--stable VERSION"):
        rollout.start(2, FAST)  # no pin: the newest version already takes all traffic
    pending = store.push(fake_saved_model(str(tmp_path / "pending-model")), {}, pending=True).version
    with pytest.raises(
        RolloutError, match=rf"version {pending} is waiting for approval.*detx models approve {pending}"
    ):
        rollout.start(pending, FAST)
    with pytest.raises(ValueError, match="canary_percent must be at least 0 and below 100"):
        rollout.start(2, {"canary_percent": 100.0}, stable=1)
    with pytest.raises(RolloutError, match="no rollout in progress"):
        rollout.abort("nothing")
    assert read_traffic(store.root) is None and read_state(store.root) is None  # nothing written by refusals


def test_an_unreadable_source_changes_nothing(store, page):
    rollout = Rollout(store, LocalTarget(store.root), ServerMetricsSource("http://127.0.0.1:9/metrics", "detx"))
    with pytest.raises(SignalError, match=r"cannot read http://127\.0\.0\.1:9/metrics .*detx serve --metrics-port"):
        rollout.start(2, FAST)
    assert read_traffic(store.root) == TrafficSplit(1) and read_state(store.root) is None


def test_a_split_changed_by_hand_stops_the_steps_but_abort_and_promote_work(store, page):
    rollout = _rollout(store, page)
    state = rollout.start(2, FAST, stable=1)
    write_traffic(store.root, TrafficSplit(1, 2, canary_percent=90.0))
    with pytest.raises(RolloutError, match="changed by hand; settle the rollout with `detx rollout promote`"):
        rollout.step(state)
    state = rollout.promote("looked fine in the dashboards")
    assert state.stage == "promoted" and state.reason == "by hand: looked fine in the dashboards"
    assert read_traffic(store.root) == TrafficSplit(2)


def test_abort_by_hand_rolls_back_with_the_reason(store, page):
    rollout = _rollout(store, page)
    rollout.start(2, FAST, stable=1)
    with pytest.raises(RolloutError, match="needs a reason"):
        rollout.abort(" ")
    state = rollout.abort("customer complaints")
    assert state.stage == "aborted" and state.reason == "aborted by hand: customer complaints"
    assert read_traffic(store.root) == TrafficSplit(1) and store.retired_versions() == [2]
    with open(os.path.join(store.root, ".retired", "2", "detx_lineage.json")) as f:
        assert json.load(f)["rollout"]["reason"] == "aborted by hand: customer complaints"


def test_where_the_split_applies_later_a_rolled_back_candidate_stays_and_cannot_start_again(store, page):
    said: list[str] = []
    rollout = _rollout(store, page, said)
    rollout.retire = False  # as for a Kubernetes overlay: the cluster follows it only once applied
    rollout.start(2, FAST)
    state = rollout.abort("the canary pods crash")
    assert state.stage == "aborted" and store.complete_versions() == [1, 2] and store.retired_versions() == []
    assert said[-1].startswith("Version 2 stays in ") and "until the split above is applied" in said[-1]
    assert read_traffic(store.root) == TrafficSplit(1)
    with pytest.raises(RolloutError, match=r"version 2 was aborted at .*the canary pods crash; a new candidate"):
        rollout.start(2, FAST)
