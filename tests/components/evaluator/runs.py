"""Runs DetectionEvaluator's executor for real (TFMA on Beam's local engine) on artifacts made in a folder."""

import os

from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from detx.components.beam_args import local_beam_args
from detx.components.evaluator import executor
from detx.components.evaluator.options import EvaluatorOptions
from detx.components.evaluator.report import EvaluationReport


def run_evaluator(tmp_path, examples_dir, model_dir, push_destination="", baseline="auto", **options):
    """The Evaluator's report and blessing artifact for `model_dir` (a `.../Format-Serving` SavedModel)."""
    examples = standard_artifacts.Examples()
    examples.uri = examples_dir
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model = standard_artifacts.Model()
    model.uri = os.path.dirname(model_dir)
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=local_beam_args(), tmp_dir=str(tmp_path))
    executor.Executor(context).Do(
        {"examples": [examples], "model": [model]},
        {"evaluation": [evaluation], "blessing": [blessing]},
        {
            executor.PUSH_DESTINATION: push_destination,
            executor.BASELINE_SETTING: baseline,
            **EvaluatorOptions(**options).exec_properties(),
        },
    )
    return EvaluationReport.read(blessing.uri), blessing
