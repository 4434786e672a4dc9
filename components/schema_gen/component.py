"""DetectionSchemaGen: the checked-in detection schema, with the dataset's label map filled in."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from detx.components.schema_gen.executor import Executor


class DetectionSchemaGenSpec(ComponentSpec):
    """Inputs, outputs and parameters of DetectionSchemaGen."""

    PARAMETERS = {"schema_file": ExecutionParameter(type=str, optional=True)}  # noqa: RUF012
    INPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}  # noqa: RUF012
    OUTPUTS = {"schema": ChannelParameter(type=standard_artifacts.Schema)}  # noqa: RUF012


class DetectionSchemaGen(base_component.BaseComponent):
    """Writes the curated schema, specialised to the label map that travels with the examples.

    Unlike the stock SchemaGen, which infers a schema from whatever the data
    holds (and so accepts bad data as normal), this one starts from the
    checked-in `schema.pbtxt` and only fills in what depends on the dataset:
    label ids 1..N and the class names.
    """

    SPEC_CLASS = DetectionSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: base_component.types.BaseChannel, schema_file: str = "") -> None:
        """Builds the component.

        Args:
            examples: the ExampleGen's output (its label map is used).
            schema_file: a schema template to use instead of detx's own; any
                path TensorFlow's file system can read (local, gs://, ...).
        """
        from tfx import types

        super().__init__(
            spec=DetectionSchemaGenSpec(
                examples=examples,
                schema_file=schema_file,
                schema=types.Channel(type=standard_artifacts.Schema),
            )
        )
