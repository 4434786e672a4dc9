"""The InfraValidator's executor: TFX's InfraBlessing layout, and no server for what cannot pass."""

import os

from tfx.types import standard_artifacts

from detx.components.evaluator.report import EvaluationReport
from detx.components.infra_validator import executor
from detx.components.infra_validator.options import InfraValidatorOptions
from detx.components.infra_validator.report import BLESSED_KEY, NOT_BLESSED_FILE, InfraReport
from testing.data import write_examples


def _run(tmp_path, blessed_by_evaluator, eval_images):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")  # never loaded in these cases
    examples = standard_artifacts.Examples()
    examples.uri = write_examples(str(tmp_path / "examples"), 4 + eval_images, splits={"train": 4, "eval": eval_images})
    examples.split_names = '["train", "eval"]'
    evaluation = standard_artifacts.ModelBlessing()
    evaluation.uri = str(tmp_path / "evaluation")
    os.makedirs(evaluation.uri)
    EvaluationReport(blessed_by_evaluator, [], {}, None, None, {}, 0.3, 0.01).write(evaluation.uri)
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "infra")
    options = InfraValidatorOptions(server="detx serve").to_json()
    executor.Executor().Do(
        {"model": [model], "examples": [examples], "model_blessing": [evaluation]},
        {"blessing": [blessing]},
        {"options": options},
    )
    return blessing, InfraReport.read(blessing.uri)


def test_a_model_the_evaluator_did_not_bless_is_not_served_at_all(tmp_path):
    blessing, report = _run(tmp_path, blessed_by_evaluator=False, eval_images=2)
    assert not report.blessed and report.server == "" and "did not bless" in report.reasons[0]
    assert blessing.get_int_custom_property(BLESSED_KEY) == 0
    assert os.path.exists(os.path.join(blessing.uri, NOT_BLESSED_FILE))
    assert "not infra-blessed" in report.verdict()


def test_an_empty_eval_split_gives_no_requests_and_no_blessing(tmp_path):
    _, report = _run(tmp_path, blessed_by_evaluator=True, eval_images=0)
    assert not report.blessed and "eval split is empty" in report.reasons[0]
