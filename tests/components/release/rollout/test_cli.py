"""`detx rollout` on the command line, step by step (--once), against the model server's real metrics page."""

from __future__ import annotations

from click.testing import CliRunner

from detx.components.release.traffic import TrafficSplit, read_traffic
from detx.pipeline.cli import main


def _detx(store, page, *args):
    where = ["--push-destination", store.root, "--metrics-url", page.url]
    return CliRunner().invoke(main, ["rollout", *args, *where])


def test_step_by_step_to_promotion_with_status_and_refusals(store, page):
    assert _detx(store, page, "status").output == f"No rollout in {store.root}; traffic: stable 1 alone\n"
    fast = ("--min-requests", "5", "--shadow-percent", "100", "--canary-percent", "50")
    started = _detx(store, page, "start", "2", "--once", *fast)
    assert started.exit_code == 0, started.output
    assert started.output.endswith("Version 2: shadow stage in progress; `detx rollout start 2` continues\n")
    page.answers(1, "stable", 5)
    page.answers(2, "shadow", 5)
    page.compared(1, 2, 5)
    status = _detx(store, page, "status")
    assert "Version 2 against stable 1: shadow since " in status.output
    assert "figures now: 5 of 5 requests judged -> pass" in status.output
    assert "  agreement: 1.00 over 5 compared requests" in status.output
    other = _detx(store, page, "start", "1", "--once")
    assert other.exit_code == 1 and "one rollout at a time" in other.output
    changed = _detx(store, page, "start", "2", "--once", "--min-requests", "7")
    assert changed.exit_code == 1 and "started with min_requests=5; a rollout keeps its criteria" in changed.output
    assert _detx(store, page, "start", "2", "--once").exit_code == 0
    assert read_traffic(store.root) == TrafficSplit(1, 2, canary_percent=50.0)
    page.answers(1, "stable", 5)
    page.answers(2, "canary", 5)
    done = _detx(store, page, "start", "2", "--once")
    assert done.exit_code == 0 and done.output.endswith("Version 2 promoted: it serves all traffic\n")
    assert read_traffic(store.root) == TrafficSplit(2)
    after = _detx(store, page, "status")
    assert "Version 2 against stable 1: promoted at " in after.output and "figures now" not in after.output


def test_a_rollback_exits_1_with_the_reason(store, page):
    assert _detx(store, page, "start", "2", "--once", "--shadow-percent", "0", "--min-requests", "5").exit_code == 0
    page.answers(2, "canary", 2, code="INTERNAL")
    result = _detx(store, page, "start", "2", "--once")
    assert result.exit_code == 1
    assert result.output.endswith(
        "Version 2 rolled back: canary stage failed: error rate: 100.0% (2 of 2; stable 0.0%; limit 1.0%)\n"
    )
    assert store.retired_versions() == [2]


def test_bad_input_is_refused_with_what_to_do(store, page, fake_saved_model, tmp_path):
    pending = store.push(fake_saved_model(str(tmp_path / "pending")), {}, pending=True).version
    refused = _detx(store, page, "start", str(pending))
    assert refused.exit_code == 1 and f"detx models approve {pending} --by NAME --reason TEXT" in refused.output
    assert _detx(store, page, "abort").exit_code == 2  # --reason is required
    nothing = _detx(store, page, "abort", "--reason", "why")
    assert nothing.exit_code == 1 and "no rollout in progress" in nothing.output
    half = _detx(store, page, "status", "--overlay", str(tmp_path))
    assert half.exit_code == 2 and "needs both --overlay" in half.output
    assert _detx(store, page, "start", "2", "--canary-percent", "100").exit_code == 1
    assert read_traffic(store.root) == TrafficSplit(1)  # nothing written by any of these
