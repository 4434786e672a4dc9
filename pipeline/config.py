"""Pipeline configuration: frozen dataclasses with the defaults a first run needs.

Paths that differ per environment (project directory, pipeline root, metadata
database) are not here: the runners resolve them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.data.ingest_options import IngestOptions
from detx.components.evaluator.options import EvaluatorOptions
from detx.components.infra_validator.options import InfraValidatorOptions
from detx.components.modeling.config import TrainConfig
from detx.components.release.options import ReleaseOptions
from detx.components.tflite.options import TFLiteOptions
from detx.components.trainer.options import TrainerOptions
from detx.components.tuner.options import TunerOptions


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
        format: "auto" (detected from the folder when the ExampleGen runs),
            "coco", "voc", "yolo" or "tfrecord".
        pattern: annotation files relative to `path`; None uses the format's convention.
        image_dir: image folder relative to `path`; "" uses the format's convention.
        splits: split name to hash buckets of the image id (4:1 is an 80/20 split).
        max_rejected_fraction: the run stops when more of the data is quarantined.
        max_pixels: images with more pixels are quarantined.
        span: the span to read when `pattern` has TFX's `{SPAN}` or the data is
            a span root (None: the newest locally; on Kubeflow a run parameter,
            where 0 means span 0, or the newest with a span root).
        span_window: 0: `path` is one dataset. N >= 1: `path` is a span root
            (`span-1/`, `span-2/`, ... as `detx data add-span` writes; see
            components/data/spans.py) and a run trains and evaluates on the
            newest span and the N - 1 before it; `pattern` and `image_dir`
            are then relative to each span folder.
    """

    path: str
    format: str = IngestOptions.data_format
    pattern: str | None = None
    image_dir: str = ""
    splits: Mapping[str, int] = dataclasses.field(default_factory=lambda: MappingProxyType({"train": 4, "eval": 1}))
    # The ingest limits' defaults are IngestOptions's own (written there once).
    max_rejected_fraction: float = IngestOptions.max_rejected_fraction
    max_pixels: int = IngestOptions.max_pixels
    span: int | None = None
    span_window: int = 0

    def ingest_options(self) -> IngestOptions:
        """DetectionExampleGen's options for this data."""
        return IngestOptions(
            data_format=self.format,
            image_dir=self.image_dir,
            max_rejected_fraction=self.max_rejected_fraction,
            max_pixels=self.max_pixels,
            span_window=self.span_window,
            span_pattern=(self.pattern or "") if self.span_window else "",
        )

    def as_span_root(self) -> DataConfig:
        """This data read as a span root, a window of at least one span (what `detx ct` works on)."""
        return dataclasses.replace(self, span_window=max(self.span_window, 1))


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """How `detx kfp compile` builds the Kubeflow Pipelines spec.

    Attributes:
        image: the detx pipeline image every step runs (see the Dockerfile).
        pipeline_root: where artifacts go: a `gs://` (or `s3://`) URL every
            step can write. KFP's default `minio://` root is not one TFX can
            use, and KFP's launcher rejects plain paths.
        trainer_gpus: GPUs the Trainer step asks for (0: none).
        gpu_type: the accelerator resource name.
        trainer_memory: the Trainer's memory limit ("" leaves it to the cluster).
        trainer_cpu: the Trainer's CPU limit (0 leaves it to the cluster).
        gpu_tolerations: taints of GPU nodes the Trainer tolerates, as Kubernetes
            tolerations (key, operator, value, effect). The default tolerates
            `nvidia.com/gpu` taints, the usual taint of GPU node pools (AKS, EKS
            and most self-managed clusters; GKE adds it itself).
        gpu_node_selector: node labels the Trainer's node must have (empty:
            asking for the GPU resource already picks a GPU node); for example
            `{cloud.google.com/gke-accelerator: nvidia-l4}` for one GPU model.
        step_cpu: the CPU limit of every other step (0 leaves it to the
            cluster); Beam's DirectRunner starts one worker per CPU of this
            limit (pipeline/kfp_entrypoint.py).
        step_memory: the memory limit of every other step ("" leaves it to
            the cluster).
    """

    image: str = "ghcr.io/detx-project/detx-pipeline:0.1.0"
    pipeline_root: str = "gs://YOUR_BUCKET/detx/pipeline_root"
    trainer_gpus: int = 1
    gpu_type: str = "nvidia.com/gpu"
    trainer_memory: str = "32G"
    trainer_cpu: float = 8.0
    gpu_tolerations: tuple[dict[str, Any], ...] = (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    gpu_node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    step_cpu: float = 4.0
    step_memory: str = "16G"

    def __post_init__(self) -> None:
        if self.trainer_gpus < 0:
            raise ValueError(f"trainer_gpus must be 0 or more, got {self.trainer_gpus}")
        if self.trainer_cpu < 0 or self.step_cpu < 0:
            raise ValueError("trainer_cpu and step_cpu must be 0 (no limit) or more")
        # A config file gives a list; the frozen config keeps a tuple.
        object.__setattr__(self, "gpu_tolerations", tuple(dict(t) for t in self.gpu_tolerations))
        check_pipeline_root(self.pipeline_root)


def check_pipeline_root(root: str) -> str:
    """A KFP pipeline root TFX can write, returned unchanged.

    KFP's launcher maps only gs://, s3:// and minio:// roots (plain paths are
    refused); TensorFlow's file systems, which TFX writes through, know gs://
    and, with tensorflow-io, s3://, but not minio://, KFP's own default.

    Raises:
        ValueError: the root is a plain path or minio://; the message names the fix.
    """
    if "://" not in root or root.startswith("minio://"):
        raise ValueError(
            f"pipeline root {root!r} is not one TFX can write on Kubeflow: use gs://bucket/detx/root "
            "(TensorFlow writes it directly), or s3://bucket/detx/root with tensorflow-io installed in the "
            "pipeline image and AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, S3_ENDPOINT for "
            "MinIO or another S3-compatible store) in every step's environment"
        )
    return root


@dataclasses.dataclass(frozen=True)
class ContinuousTrainingConfig:
    """When `detx ct check` says to retrain, and where it looks (config file section `ct`).

    Attributes:
        min_new_images: new spans with at least this many images in all trigger a retraining.
        class_linf: L-infinity distance between the class mix of the new spans
            and of the served model's training data above which they drifted.
        box_size_jsd: Jensen-Shannon divergence of box areas (fraction of the image) above which ...
        brightness_jsd: ... and of image brightness.
        max_model_age_days: a served model older than this triggers a retraining (0: never).
        request_log: the model server's request log (`detx serve --request-log`); "" skips live signals.
        min_live_images: logged images of the served version needed before live signals count.
        max_score_drop: relative fall of the live mean top score, against the eval split's, that triggers.
        skew_brightness_jsd: serving vs training brightness divergence reported as skew.
        state_dir: where `detx ct run` keeps its lock and what it started ("" = <project>/ct).
        warm_start: retrain from the served version's weights (`trainer.pretrained: production`)
            when it has them, on the shorter warm-start schedule (`trainer.warm_start_steps`,
            `trainer.warm_start_learning_rate`): each retraining builds on what production
            learned instead of paying the whole schedule again. False: from `trainer.pretrained`.
    """

    min_new_images: int = 500
    class_linf: float = 0.1
    box_size_jsd: float = 0.1
    brightness_jsd: float = 0.1
    max_model_age_days: float = 30.0
    request_log: str = ""
    min_live_images: int = 50
    max_score_drop: float = 0.2
    skew_brightness_jsd: float = 0.1
    state_dir: str = ""
    warm_start: bool = True

    def __post_init__(self) -> None:
        for name in ("class_linf", "box_size_jsd", "brightness_jsd", "max_score_drop", "skew_brightness_jsd"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ct.{name} must be in [0, 1], got {value}")
        if self.min_new_images < 1 or self.min_live_images < 1 or self.max_model_age_days < 0:
            raise ValueError("ct.min_new_images and ct.min_live_images must be >= 1, ct.max_model_age_days >= 0")


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
        infra_validator: the model server check before a push, and its budgets.
        release: approval of pushed models and the model card's texts.
        tflite: the TFLite step (off by default) and its int8 gate.
        tuner: the Tuner step (off by default; on Kubeflow the `tuning` run parameter) and its budget.
        batch_inference: the step after the Pusher that scores the span's images with the pushed
            version (off by default; `detx infer` does the same on demand).
        push_destination: the TF Serving model base path pushes go to ("" lets the runner choose).
        baseline: how the Evaluator finds the model in production: "auto" (look in
            the push destination when it runs), "none", or a version directory
            (the local runner passes the one in production when it builds the run,
            so that the cache key follows production).
        beam_args: Beam pipeline arguments for ExampleGen, StatisticsGen, the
            DataGate and the Evaluator; empty: Beam's DirectRunner on every core
            (see `default_beam_args`; pipeline/configs/ has Dataflow and Flink).
        kubeflow: settings for `detx kfp compile`.
        ct: continuous training triggers (`detx ct check`, `detx ct run`).
    """

    data: DataConfig
    name: str = "detx"
    schema_file: str = ""
    stop_after: Stage = Stage.PUSH
    enable_cache: bool = True
    trainer: TrainerOptions = dataclasses.field(default_factory=TrainerOptions)
    train_steps: int = TrainConfig.train_steps  # the Zoo's schedule length, written once in modeling/config.py
    evaluator: EvaluatorOptions = dataclasses.field(default_factory=EvaluatorOptions)
    infra_validator: InfraValidatorOptions = dataclasses.field(default_factory=InfraValidatorOptions)
    release: ReleaseOptions = dataclasses.field(default_factory=ReleaseOptions)
    tflite: TFLiteOptions = dataclasses.field(default_factory=TFLiteOptions)
    tuner: TunerOptions = dataclasses.field(default_factory=TunerOptions)
    batch_inference: BulkInferenceOptions = dataclasses.field(default_factory=BulkInferenceOptions)
    push_destination: str = ""
    baseline: str = "auto"
    beam_args: tuple[str, ...] = ()
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)
    ct: ContinuousTrainingConfig = dataclasses.field(default_factory=ContinuousTrainingConfig)

    def __post_init__(self) -> None:
        # YAML and JSON bring lists; the config stays hashable and immutable.
        object.__setattr__(self, "beam_args", tuple(self.beam_args))
