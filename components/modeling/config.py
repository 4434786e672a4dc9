"""Model and training presets: `zoo320` is the Model Zoo's SSD MobileNetV2-FPNLite 320x320; `tiny` is for CPU tests.

Every value of `zoo320` comes from the Zoo's `pipeline.config`
(ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8, see shared/reference/model_zoo_ssd.md).
`tiny` runs the same code with fewer pixels and channels.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The detector's architecture and post-processing.

    Attributes:
        image_size: the square input size the image is resized to.
        alpha: MobileNetV2 width multiplier.
        min_level, max_level: FPN levels; level l has stride 2**l.
        fpn_depth: channels of the FPN, the extra levels and the box predictor.
        tower_layers: separable convs in the shared prediction tower.
        anchor_scale: base anchor size in strides (4.0: 32 px at level 3).
        aspect_ratios: anchor height/width ratios per scale.
        scales_per_octave: anchor scales between levels (2: sizes x1 and x sqrt(2)).
        class_bias_init: initial class-head bias (-4.6 = sigmoid 0.01, the focal-loss prior).
        l2_weight: Keras L2 factor (the Zoo's 4e-5 halved, as its Keras builder does).
        bn_momentum, bn_epsilon: batch normalization.
        score_threshold, iou_threshold, max_detections_per_class, max_detections: NMS.
        focal_alpha, focal_gamma: sigmoid focal loss.
        huber_delta: smooth L1 transition point.
        matched_threshold: IoU at which an anchor matches a box (no ignore band).
        box_code_scales: Faster R-CNN box coder scales (y, x, h, w).
    """

    image_size: int = 320
    alpha: float = 1.0
    min_level: int = 3
    max_level: int = 7
    fpn_depth: int = 128
    tower_layers: int = 4
    anchor_scale: float = 4.0
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5)
    scales_per_octave: int = 2
    class_bias_init: float = -4.6
    l2_weight: float = 2e-5
    bn_momentum: float = 0.997
    bn_epsilon: float = 0.001
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_detections_per_class: int = 100
    max_detections: int = 100
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    huber_delta: float = 1.0
    matched_threshold: float = 0.5
    box_code_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)

    @property
    def anchors_per_location(self) -> int:
        """Anchors per feature-map cell (aspect ratios x scales)."""
        return len(self.aspect_ratios) * self.scales_per_octave

    def __post_init__(self) -> None:
        if self.image_size % (2**5) != 0:
            raise ValueError(f"image_size must be a multiple of 32 for the FPN, got {self.image_size}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimization and input pipeline settings.

    The Zoo trains with batch 128 and a cosine schedule from 0.08; with another
    batch size the learning rate is scaled linearly (`scaled_learning_rate`),
    the usual remedy for the divergence small-batch fine-tuning shows.

    Attributes:
        batch_size: global batch size (split over replicas).
        train_steps: training steps (the Zoo's 50,000 is also `PipelineConfig.train_steps`'s default).
        base_learning_rate: the Zoo's rate for `reference_batch_size`.
        reference_batch_size: the batch `base_learning_rate` was tuned for.
        warmup_learning_rate: the Zoo's warm-up start, also scaled.
        warmup_steps: linear warm-up steps.
        momentum: SGD momentum.
        freeze_batchnorm: BN statistics fixed, gamma and beta trained, as the OD API (for tiny batches).
        shuffle_buffer: examples in the shuffle buffer.
        checkpoint_every: steps between checkpoints (and resume points).
        seed: seeds shuffling, augmentation and initialization.
        augment: apply the Zoo's random flip and random crop.
    """

    batch_size: int = 128
    train_steps: int = 50_000
    base_learning_rate: float = 0.08
    reference_batch_size: int = 128
    warmup_learning_rate: float = 0.026666
    warmup_steps: int = 1_000
    momentum: float = 0.9
    freeze_batchnorm: bool = False
    shuffle_buffer: int = 2048
    checkpoint_every: int = 500
    seed: int = 0
    augment: bool = True

    def scaled_learning_rate(self) -> tuple[float, float]:
        """(base, warm-up start) learning rates scaled from the reference batch size."""
        factor = self.batch_size / self.reference_batch_size
        return self.base_learning_rate * factor, self.warmup_learning_rate * factor

    def learning_rate(self, step: float) -> float:
        """The Zoo's cosine decay with linear warm-up, in plain Python (for tests and logs)."""
        base, warm = self.scaled_learning_rate()
        warmup = min(self.warmup_steps, self.train_steps)
        if step > self.train_steps:
            return 0.0
        if step < warmup:
            return warm + (base - warm) * step / warmup
        return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(self.train_steps - warmup, 1)))


PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "zoo320": (ModelConfig(), TrainConfig()),
    # Same code paths at a CPU-friendly size: 192 px, a 0.35-wide backbone, a 64-channel FPN, 2 tower
    # layers. Its own learning rate (tuned at batch 16) and faster BN statistics (momentum 0.9): with a
    # few hundred steps, the Zoo's 0.997 leaves the moving averages far from the trained network's, and
    # the exported model (which uses them) scores near the prior: after 800 steps on 640 synthetic images,
    # eval mAP@0.5 was 0.11 with 0.997 and 0.83 with 0.9 (pycocotools, 2026-11-22).
    "tiny": (
        ModelConfig(image_size=192, alpha=0.35, fpn_depth=64, tower_layers=2, bn_momentum=0.9),
        TrainConfig(
            batch_size=16,
            train_steps=800,
            base_learning_rate=0.04,
            reference_batch_size=16,
            warmup_learning_rate=0.0133,
            warmup_steps=100,
            # Measured (bench/tiny_learning.py, 2026-11-22): 100-step epochs reached eval mAP@0.5 0.77,
            # 200-step epochs 0.61 with everything else equal; the cause is not understood yet.
            checkpoint_every=100,
        ),
    ),
}

# What a Model Zoo checkpoint restores (components/modeling/zoo_checkpoint.py): the backbone and
# FPN, also the box head, or everything (the class head too, for the same classes).
RESTORE_SCOPES = ("detection", "detection+box", "full")


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """Looks up a preset by name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
