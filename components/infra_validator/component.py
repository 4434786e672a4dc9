"""DetectionInfraValidator: the candidate in a real model server, with TF Serving warm-up, before the Pusher."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.infra_validator import executor
from detx.components.infra_validator.options import OPTIONS, InfraValidatorOptions


class DetectionInfraValidatorSpec(ComponentSpec):
    """Inputs, outputs and parameters of DetectionInfraValidator."""

    PARAMETERS = {OPTIONS: ExecutionParameter(type=str)}  # noqa: RUF012
    INPUTS = {  # noqa: RUF012
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
    }
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.InfraBlessing)}  # noqa: RUF012


class DetectionInfraValidator(base_component.BaseComponent):
    """Loads the candidate in a model server and sends it real eval-split requests.

    The role of TFX's InfraValidator, for detectors: `tensorflow_model_server`
    when installed (the pipeline image has it), else `detx serve`; requests
    through every signature; served answers compared with the in-process
    model's; load time, first-request latency, p50/p99 under load and peak
    memory against budgets. Its InfraBlessing carries the model with TF
    Serving's warm-up file (`stamped_model/`, TFX's layout), which is what the
    Pusher pushes. Models the Evaluator did not bless are not started.
    """

    SPEC_CLASS = DetectionInfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        model_blessing: types.BaseChannel | None = None,
        options: InfraValidatorOptions | None = None,
    ) -> None:
        """Builds the component.

        Args:
            model: the Trainer's model.
            examples: ExampleGen's examples (requests come from the eval split).
            model_blessing: the Evaluator's blessing (unblessed models are not checked).
            options: server, load and budgets.
        """
        super().__init__(
            spec=DetectionInfraValidatorSpec(
                model=model,
                examples=examples,
                model_blessing=model_blessing,
                options=(options or InfraValidatorOptions()).to_json(),
                blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            )
        )
