"""The InfraValidator's executor: writes TFX's InfraBlessing, with the warm-up model inside when blessed."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from detx.components.evaluator.report import EvaluationReport
from detx.components.infra_validator.options import OPTIONS, InfraValidatorOptions
from detx.components.infra_validator.report import BLESSED_KEY, HAS_MODEL_KEY, InfraReport
from detx.components.infra_validator.validate import validate
from detx.components.model_store import copy_tree

PROGRESS = logging.getLogger("detx.progress")
_EVAL_SPLIT = "eval"


def eval_examples(examples: types.Artifact, count: int) -> list[bytes]:
    """The first `count` serialized tf.Examples of the eval split (ExampleGen writes GZIP TFRecords)."""
    split_uri = artifact_utils.get_split_uri([examples], _EVAL_SPLIT)
    files = sorted(tf.io.gfile.glob(os.path.join(split_uri, "*")))
    if not files:
        return []
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return [bytes(record) for record in dataset.as_numpy_iterator()]


class Executor(base_executor.BaseExecutor):
    """Checks a blessed candidate in a model server; skips (not infra-blessed) what the Evaluator did not bless."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Validates the model and writes the InfraBlessing.

        Args:
            input_dict: `model`, `examples` (requests come from its eval split),
                optionally `model_blessing` (the Evaluator's; unblessed models are not served).
            output_dict: `blessing`: TFX's InfraBlessing; when blessed it holds the
                model with its warm-up file at `stamped_model/` (TFX's layout), which the Pusher pushes.
            exec_properties: `options` (InfraValidatorOptions as JSON).
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        options = InfraValidatorOptions.from_json(exec_properties.get(OPTIONS) or "")
        evaluator = input_dict.get("model_blessing") or []
        report: InfraReport
        if evaluator and not EvaluationReport.read(evaluator[0].uri).blessed:
            report = InfraReport(blessed=False, reasons=["not checked: the Evaluator did not bless the model"])
        else:
            requests_from = eval_examples(examples, options.examples)
            if not requests_from:
                report = InfraReport(blessed=False, reasons=["the eval split is empty: no real requests to send"])
            else:
                report = self._validate(model, requests_from, options, blessing)
        report.write(blessing.uri)
        blessing.set_int_custom_property(BLESSED_KEY, int(report.blessed))
        PROGRESS.info("%s", report.verdict())

    def _validate(
        self, model: types.Artifact, examples: list[bytes], options: InfraValidatorOptions, blessing: types.Artifact
    ) -> InfraReport:
        source = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        with tempfile.TemporaryDirectory(prefix="detx-infra-") as workdir:
            report, staged = validate(source, examples, options, workdir)
            if report.blessed:
                # TFX's InfraValidator puts the model with its warm-up file here; its Pusher pushes it.
                copy_tree(staged, path_utils.stamped_model_path(blessing.uri))
                blessing.set_int_custom_property(HAS_MODEL_KEY, 1)
        return report
