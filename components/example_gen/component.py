"""DetectionExampleGen: a FileBasedExampleGen for COCO, Pascal VOC and OD API TFRecord datasets.

It is TFX's file-based ExampleGen (same driver, span handling, hash split and
GZIP TFRecord output) with detx's executor, which checks every image and box.
TFRecord input deliberately goes through this component too, not through the
stock ImportExampleGen, which would pass bad records through unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import any_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.data import features
from components.example_gen.executor import Executor
from components.example_gen.options import DEFAULT_PATTERNS, IngestOptions


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


class DetectionExampleGen(FileBasedExampleGen):
    """Reads a detection dataset, quarantines bad records, and writes OD API tf.Examples."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        options: IngestOptions,
        splits: Mapping[str, int],
        pattern: str | None = None,
    ) -> None:
        """Builds the component.

        Args:
            input_base: the dataset folder.
            options: format and limits.
            splits: split name to hash buckets (see `split_config`).
            pattern: the annotation files relative to `input_base`; defaults to
                the format's convention.
        """
        packed = any_pb2.Any()
        packed.Pack(options.to_struct())
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(
                splits=[
                    example_gen_pb2.Input.Split(
                        name="single_split", pattern=pattern or DEFAULT_PATTERNS[options.data_format]
                    )
                ]
            ),
            output_config=split_config(splits),
            custom_config=example_gen_pb2.CustomConfig(custom_config=packed),
        )
