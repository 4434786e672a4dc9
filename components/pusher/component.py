"""DetectionPusher: blessed models become the next numbered version of the push destination, all at once."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.pusher import executor, lineage
from detx.components.release.options import ReleaseOptions
from detx.components.tflite.component import TFLiteModels


class DetectionPusherSpec(ComponentSpec):
    """Inputs, outputs and parameters of DetectionPusher."""

    PARAMETERS = {  # noqa: RUF012
        executor.PUSH_DESTINATION: ExecutionParameter(type=str),
        lineage.APPROVAL: ExecutionParameter(type=str),
        lineage.RELEASE: ExecutionParameter(type=str),
    }
    INPUTS = {  # noqa: RUF012
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "infra_blessing": ChannelParameter(type=standard_artifacts.InfraBlessing, optional=True),
        "tflite_models": ChannelParameter(type=TFLiteModels, optional=True),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}  # noqa: RUF012


class DetectionPusher(base_component.BaseComponent):
    """Publishes blessed models to a TF Serving model base path.

    Unlike TFX's Pusher (which copies into a timestamp-named directory in
    place), a version never appears half-written: see `detx.components.model_store.ModelStore.push`.
    Versions are 1, 2, 3...; each records its lineage (data, training,
    metrics, the baseline it beat, infra-validation figures, approval) in
    `detx_lineage.json` and carries a model card (`model_card/`). With the
    InfraValidator's blessing, the model pushed is its copy with TF Serving's
    warm-up file, and a model that is not infra-blessed is not pushed. With
    approval required, the version waits in `.pending/` for `detx models approve`. A
    model already served or pending is not pushed again.
    """

    SPEC_CLASS = DetectionPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        examples: types.BaseChannel,
        push_destination: str | types.RuntimeParameter,
        statistics: types.BaseChannel | None = None,
        infra_blessing: types.BaseChannel | None = None,
        tflite_models: types.BaseChannel | None = None,
        approval: str | types.RuntimeParameter = "none",
        release: ReleaseOptions | None = None,
    ) -> None:
        """Builds the component.

        Args:
            model: the Trainer's model.
            model_blessing: the Evaluator's verdict on it.
            examples: the data it was trained on (recorded in the lineage).
            push_destination: the model base path TF Serving watches.
            statistics: StatisticsGen's statistics of `examples`; the train
                split's go into the version (`detx_train_stats.pb`), where
                drift and skew checks find what the served model was trained on.
            infra_blessing: the InfraValidator's verdict (and its model with the warm-up file).
            tflite_models: the TFLite step's models; the shipped ones go into the version's
                `assets.extra/tflite/` (TF Serving ignores them).
            approval: "none" or "required" (a KFP run parameter; see `ReleaseOptions`).
            release: the model card's intended use and limitations (`approval` is the argument above).
        """
        super().__init__(
            spec=DetectionPusherSpec(
                model=model,
                model_blessing=model_blessing,
                examples=examples,
                statistics=statistics,
                infra_blessing=infra_blessing,
                tflite_models=tflite_models,
                push_destination=push_destination,
                approval=approval,
                **lineage.release_properties(release or ReleaseOptions()),
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            )
        )
