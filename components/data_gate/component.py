"""DataGate: turns ExampleValidator's anomalies into a stopped run, with the counts that explain it."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.data_gate.executor import Executor


class DataGateResult(Artifact):
    """The gate's verdict: `gate_report.json` with the anomalies and their example counts."""

    # Importable as detx.DataGateResult (see detx/__init__.py): KFP needs that.
    TYPE_NAME = "detx.DataGateResult"


class DataGateSpec(ComponentSpec):
    """Inputs, outputs and parameters of DataGate."""

    PARAMETERS = {"count_examples": ExecutionParameter(type=int, optional=True)}  # noqa: RUF012
    INPUTS = {  # noqa: RUF012
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {"result": ChannelParameter(type=DataGateResult)}  # noqa: RUF012


class DataGate(base_component.BaseComponent):
    """Fails the run when ExampleValidator found any anomaly.

    TFX's ExampleValidator records anomalies but never fails, so a pipeline
    built from stock parts trains on data its own schema rejects. This
    component reads the anomalies of every split and, when there are any,
    counts the offending examples (TFDV's per-example validation), names a few
    by image id, and raises, so nothing downstream runs.
    """

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        anomalies: types.BaseChannel,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        count_examples: bool = True,
    ) -> None:
        """Builds the component.

        Args:
            anomalies: ExampleValidator's output.
            examples: the examples that were validated.
            schema: the schema they were validated against.
            count_examples: count the examples behind each anomaly (one more
                pass over the failing split, only when there are anomalies).
        """
        super().__init__(
            spec=DataGateSpec(
                anomalies=anomalies,
                examples=examples,
                schema=schema,
                count_examples=int(count_examples),
                result=types.Channel(type=DataGateResult),
            )
        )
