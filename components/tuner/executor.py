"""The DetectionTuner's executor: TFX's Tuner executor with an on/off switch and the Trainer's starting weights.

On: TFX's search (`tuner_fn`, then `tuner.search`) with `fn_args` carrying
`pretrained` and `push_destination`, and TFX's own writer of the outputs. Off:
an empty HyperParameters config and no trial results, in TFX's file names, at
once; the Trainer then applies nothing.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import attr
from tfx.components.trainer import fn_args_utils
from tfx.components.tuner import executor as tfx_tuner_executor
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from detx.components.trainer.executor import PRETRAINED_KEY, PUSH_DESTINATION_KEY
from detx.components.tuner.options import OFF, TUNING_MODES
from detx.components.tuner.trials import summarize

PROGRESS = logging.getLogger("detx.progress")

TUNING_KEY = "tuning"
# The file names TFX's Tuner writes (tfx/components/tuner/executor.py: _DEFAULT_BEST_HP_FILE_NAME,
# _DEFAULT_TUNER_RESULTS_FILE_NAME); TFX's Trainer reads the one file in the HyperParameters artifact.
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.txt"
TUNER_RESULTS_FILE = "tuner_results.json"


@attr.s
class TunerFnArgs(fn_args_utils.FnArgs):
    """TFX's FnArgs plus where the Trainer starts from, so trials start there too."""

    pretrained = attr.ib(type=str, default="")
    push_destination = attr.ib(type=str, default="")


def tuning_mode(exec_properties: dict[str, Any]) -> str:
    """The `tuning` property's value.

    Raises:
        ValueError: neither "on" nor "off".
    """
    mode = str(exec_properties.get(TUNING_KEY) or OFF)
    if mode not in TUNING_MODES:
        raise ValueError(f"the tuning run parameter is {mode!r}; set it to one of {', '.join(TUNING_MODES)}")
    return mode


def write_untuned(output_dict: dict[str, list[Any]]) -> None:
    """The outputs of a Tuner that is off: no values (the Trainer applies none) and no trials."""
    empty: dict[str, Any] = {"space": [], "values": {}}  # KerasTuner's HyperParameters().get_config()
    for key, name, content in (
        (standard_component_specs.BEST_HYPERPARAMETERS_KEY, BEST_HYPERPARAMETERS_FILE, empty),
        (standard_component_specs.TUNER_RESULTS_KEY, TUNER_RESULTS_FILE, []),
    ):
        uri = artifact_utils.get_single_uri(output_dict[key])
        io_utils.write_string_file(os.path.join(uri, name), json.dumps(content))


class Executor(base_executor.BaseExecutor):
    """Searches when the `tuning` property is "on"; writes empty outputs when "off"."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Runs the search, or not (see the module docstring).

        Raises:
            ValueError: a bad `tuning` value, or TuneArgs (parallel tuning is not supported).
        """
        if tuning_mode(exec_properties) == OFF:
            write_untuned(output_dict)
            PROGRESS.info("tuning is off (tuner.enabled, or the tuning run parameter): the Trainer uses its settings")
            return
        if tfx_tuner_executor.get_tune_args(exec_properties):
            raise ValueError("TuneArgs (parallel tuning) is not supported by the DetectionTuner: leave tune_args unset")
        fn_args = fn_args_utils.get_common_fn_args(input_dict, exec_properties, self._get_tmp_dir())
        fn_args = TunerFnArgs(
            **attr.asdict(fn_args, recurse=False),
            pretrained=exec_properties.get(PRETRAINED_KEY) or "",
            push_destination=exec_properties.get(PUSH_DESTINATION_KEY) or "",
        )
        result = udf_utils.get_fn(exec_properties, "tuner_fn")(fn_args)
        result.tuner.search(**result.fit_kwargs)
        # TFX's own writer: the same files and format a TFX Trainer reads.
        tfx_tuner_executor.write_best_hyperparameters(result.tuner, output_dict)
        PROGRESS.info(summarize(result.tuner).line())
