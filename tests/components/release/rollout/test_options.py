"""RolloutOptions: the stages a rollout goes through, and options that cannot work refused with the reason."""

from __future__ import annotations

import pytest

from detx.components.release.rollout.options import RolloutOptions


def test_a_stage_with_no_share_is_skipped():
    assert RolloutOptions().stages() == ("shadow", "canary")
    assert RolloutOptions(shadow_percent=0).stages() == ("canary",)
    assert RolloutOptions(canary_percent=0).stages() == ("shadow",)
    assert RolloutOptions.from_json(RolloutOptions(min_requests=7).to_json()) == RolloutOptions(min_requests=7)


@pytest.mark.parametrize(
    "values,message",
    [
        ({"shadow_percent": 0, "canary_percent": 0}, "no stage would judge the candidate; .*detx rollout promote"),
        ({"canary_percent": 100}, r"below 100 \(stable's share is the reference\)"),
        ({"shadow_percent": 101}, "shadow_percent must be between 0 and 100, got 101"),
        ({"min_requests": 0}, "min_requests must be at least 1"),
        ({"min_agreement": 1.5}, "min_agreement must be between 0 and 1, got 1.5"),
        ({"max_p99_ratio": 0.9}, r"max_p99_ratio must be at least 1 \(1: no slower than stable\)"),
        ({"poll_seconds": 0}, "poll_seconds > 0"),
    ],
)
def test_options_that_cannot_work_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        RolloutOptions(**values)
