"""Pipeline configuration: frozen dataclasses with the defaults a first run needs.

Paths that differ per environment (project directory, pipeline root, metadata
database) are not here: the runners resolve them.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from types import MappingProxyType

from components.evaluator.options import EvaluatorOptions
from components.trainer.options import TrainerOptions


class Stage(enum.Enum):
    """How far a pipeline run goes; each stage includes the ones before it."""

    VALIDATION = "validation"  # ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, DataGate
    TRAINING = "training"  # + Trainer
    EVALUATION = "evaluation"  # + DetectionEvaluator (TFMA, blessing)
    PUSH = "push"  # + DetectionPusher: the whole pipeline

    def includes(self, other: Stage) -> bool:
        """True when a run that stops after this stage runs `other`."""
        order = list(Stage)
        return order.index(other) <= order.index(self)

    @classmethod
    def parse(cls, value: str) -> Stage:
        """Reads a stage name, with a message listing the valid ones."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown stage {value!r}; choose one of {', '.join(s.value for s in cls)}") from None


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the labelled data is and how it is ingested.

    Attributes:
        path: the dataset folder (local or any TensorFlow file system path).
        format: "coco", "voc" or "tfrecord".
        pattern: annotation files relative to `path`; None uses the format's convention.
        image_dir: image folder relative to `path`; "" uses the format's convention.
        splits: split name to hash buckets of the image id (4:1 is an 80/20 split).
        max_rejected_fraction: the run stops when more of the data is quarantined.
        max_pixels: images with more pixels are quarantined.
    """

    path: str
    format: str = "coco"
    pattern: str | None = None
    image_dir: str = ""
    splits: Mapping[str, int] = dataclasses.field(default_factory=lambda: MappingProxyType({"train": 4, "eval": 1}))
    max_rejected_fraction: float = 0.01
    max_pixels: int = 40_000_000


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything `create_pipeline` needs besides paths.

    Attributes:
        name: the pipeline name (ML Metadata context, KFP pipeline name).
        data: the dataset.
        schema_file: a schema template replacing detx's own ("" = detx's).
        stop_after: the last stage to run.
        enable_cache: reuse results of unchanged components.
        trainer: model preset, starting weights and training overrides.
        train_steps: training steps.
        evaluator: blessing thresholds and slices.
        push_destination: the TF Serving model base path pushes go to ("" lets the runner choose).
        baseline: how the Evaluator finds the model in production: "auto" (look in
            the push destination when it runs), "none", or a version directory
            (the local runner passes the one in production when it builds the run,
            so that the cache key follows production).
    """

    data: DataConfig
    name: str = "detx"
    schema_file: str = ""
    stop_after: Stage = Stage.PUSH
    enable_cache: bool = True
    trainer: TrainerOptions = dataclasses.field(default_factory=TrainerOptions)
    train_steps: int = 50_000
    evaluator: EvaluatorOptions = dataclasses.field(default_factory=EvaluatorOptions)
    push_destination: str = ""
    baseline: str = "auto"


def local_beam_args() -> list[str]:
    """Beam arguments for local runs: the DirectRunner's own engine, threads on every core.

    `FnApiRunner` is the engine Beam's DirectRunner picks for batch pipelines.
    Naming it directly skips Beam 2.72's first attempt to download and start
    the Prism runner from GitHub, which fails offline and would make local
    runs depend on the network where it does not.

    Threads rather than processes: decoding images and GZIP-compressing
    records release the GIL, so threads use every core without each worker
    process paying TensorFlow's import (tens of seconds) again.
    `--direct_num_workers=0` means one worker per core.
    """
    args = ["--runner=FnApiRunner", "--direct_running_mode=multi_threading", "--direct_num_workers=0"]
    # Without a dependency flag, TFX builds an sdist of the running code for
    # every Beam component (about 2 s each) so that remote workers could
    # install it; local workers share this environment and never use it.
    setup_py = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
    if os.path.exists(setup_py):
        args.append(f"--setup_file={setup_py}")
    return args
