"""DetectionPusher: blessed models become the next numbered version of the push destination, all at once."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.pusher import executor


class DetectionPusherSpec(ComponentSpec):
    """Inputs, outputs and parameters of DetectionPusher."""

    PARAMETERS = {executor.PUSH_DESTINATION: ExecutionParameter(type=str)}  # noqa: RUF012
    INPUTS = {  # noqa: RUF012
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}  # noqa: RUF012


class DetectionPusher(base_component.BaseComponent):
    """Publishes blessed models to a TF Serving model base path.

    Unlike TFX's Pusher (which copies into a timestamp-named directory in
    place), a version never appears half-written: see `detx.components.model_store.ModelStore.push`.
    Versions are 1, 2, 3...; each records its lineage (data, metrics, the
    baseline it beat) in `detx_lineage.json`. A model already served is not
    pushed again.
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
        """
        super().__init__(
            spec=DetectionPusherSpec(
                model=model,
                model_blessing=model_blessing,
                examples=examples,
                statistics=statistics,
                push_destination=push_destination,
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            )
        )
