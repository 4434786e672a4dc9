"""The InfraValidator against real `detx serve` processes: a good candidate and four bad ones."""

from __future__ import annotations

import pytest

from detx.components import warmup
from detx.components.infra_validator.options import InfraValidatorOptions
from detx.components.infra_validator.validate import apply_budgets, validate
from tests.components.infra_validator import candidates
from tests.serving.conftest import export_tiny  # the real detector, random weights

pytestmark = pytest.mark.slow
# Fewer load requests than the default: the figures matter here, not their precision.
OPTIONS = InfraValidatorOptions(server="detx serve", examples=2, load_requests=12)


def test_a_good_candidate_is_blessed_with_figures_and_a_warmup_file(tmp_path, eval_examples):
    model = export_tiny(str(tmp_path / "model"))
    report, staged = validate(model, eval_examples, OPTIONS, str(tmp_path / "work"))
    assert report.blessed, report.reasons
    assert report.server == "detx serve"
    assert report.signatures == ["encoded_image", "serving_default", "tf_example"]
    assert report.max_abs_diff is not None and report.max_abs_diff <= OPTIONS.tolerance
    assert report.requests == OPTIONS.load_requests and report.concurrency == OPTIONS.concurrency
    assert 0 < report.p50_ms <= report.p99_ms  # type: ignore[operator]
    assert report.load_seconds and report.first_request_ms and report.peak_memory_mb and report.peak_memory_mb > 50
    records = list(warmup.read(warmup.path_in(staged)))
    assert len(records) == report.warmup_records == 2 * 3
    assert {r.model_spec.signature_name for r in records} == set(report.signatures)
    # The same figures against budgets this server cannot meet: slower and larger than allowed.
    tight = InfraValidatorOptions(max_p99_ms=report.p99_ms / 2, max_memory_mb=report.peak_memory_mb / 2)
    judged = apply_budgets(report, tight)
    assert not judged.blessed and len(judged.reasons) == 2
    assert "above infra_validator.max_p99_ms" in judged.reasons[0] and "max_memory_mb" in judged.reasons[1]
    assert apply_budgets(report, InfraValidatorOptions(max_p99_ms=0, max_memory_mb=0)).blessed  # 0: no budget


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("fails", "detx-test: this model breaks on real images"),
        ("random", "served answer differs from in-process"),
        ("unloadable", "did not load the candidate"),
    ],
    ids=["fails-on-real-inputs", "answers-differ", "does-not-load"],
)
def test_a_bad_candidate_is_not_blessed_and_the_report_says_why(tmp_path, eval_examples, kind, expected):
    model = candidates.write(str(tmp_path / kind), kind)
    report, _ = validate(model, eval_examples, OPTIONS, str(tmp_path / "work"))
    assert not report.blessed
    assert any(expected in reason for reason in report.reasons), report.reasons
    assert report.server == "detx serve"
    assert "not infra-blessed" in report.verdict()
