"""DetectionExampleGen: a FileBasedExampleGen for COCO, Pascal VOC and OD API TFRecord datasets.

It is TFX's file-based ExampleGen (same driver, span handling, hash split and
GZIP TFRecord output) with detx's executor, which checks every image and box.
TFRecord input deliberately goes through this component too, not through the
stock ImportExampleGen, which would pass bad records through unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ExecutionParameter
from tfx.types.standard_component_specs import FileBasedExampleGenSpec

from detx.components.data import features
from detx.components.data.ingest_options import DEFAULT_PATTERNS, IngestOptions
from detx.components.data.spans import SPAN_DIR_PATTERN
from detx.components.example_gen.executor import DATA_SPAN_KEY, Executor


def split_config(splits: Mapping[str, int]) -> example_gen_pb2.Output:
    """An output config that splits by a hash of the image id.

    Args:
        splits: split name to number of hash buckets, e.g. {"train": 4, "eval": 1}
            for an 80/20 split.
    """
    if not splits or any(b <= 0 for b in splits.values()):
        raise ValueError(f"splits need a positive number of hash buckets each, got {dict(splits)}")
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b) for n, b in splits.items()],
            partition_feature_name=features.SPLIT_KEY,
        )
    )


class DetectionExampleGenSpec(FileBasedExampleGenSpec):
    """TFX's file-based ExampleGen spec plus the span a run without TFX's driver reads."""

    PARAMETERS = {  # noqa: RUF012
        **FileBasedExampleGenSpec.PARAMETERS,
        DATA_SPAN_KEY: ExecutionParameter(type=int, optional=True),
    }


class DetectionExampleGen(FileBasedExampleGen):
    """Reads a detection dataset, quarantines bad records, and writes OD API tf.Examples."""

    SPEC_CLASS = DetectionExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: Any,
        options: IngestOptions,
        splits: Mapping[str, int],
        pattern: str | None = None,
        span: Any = None,
    ) -> None:
        """Builds the component.

        Args:
            input_base: the dataset folder (a str or a RuntimeParameter).
            options: format and limits.
            splits: split name to hash buckets (see `split_config`).
            pattern: the annotation files relative to `input_base`; defaults to
                the format's convention. May contain TFX's `{SPAN}`. With
                `options.span_window`, the data root's `span-{SPAN}/` folders
                are read and `options.span_pattern` applies inside them.
            span: which span to read: an int, a RuntimeParameter, or None for
                the newest. Locally TFX's driver picks the span (this becomes a
                static RangeConfig); open-source KFP runs no driver, so the
                executor puts this number into `{SPAN}` itself and records it
                as the examples' span (0 when None).
        """
        if options.span_window:
            # TFX's driver finds the newest span by this pattern; the executor reads the window.
            pattern = f"{SPAN_DIR_PATTERN}/{options.inner_pattern}"
        range_config = None
        if isinstance(span, int):
            range_config = range_config_pb2.RangeConfig(
                static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
            )
        # FileBasedExampleGen.__init__ builds TFX's own spec; this builds the
        # same one with the extra parameter.
        base_beam_component.BaseBeamComponent.__init__(
            self,
            spec=DetectionExampleGenSpec(
                input_base=input_base,
                input_config=example_gen_pb2.Input(
                    splits=[
                        example_gen_pb2.Input.Split(
                            name="single_split", pattern=pattern or DEFAULT_PATTERNS[options.data_format]
                        )
                    ]
                ),
                output_config=split_config(splits),
                custom_config=example_gen_pb2.CustomConfig(custom_config=options.to_custom_config()),
                range_config=range_config,
                output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
                output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
                data_span=span,
                examples=types.Channel(type=standard_artifacts.Examples),
            ),
        )
