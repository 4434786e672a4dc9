"""Multiscale grid anchors, as the OD API's MultiscaleGridAnchorGenerator makes them."""

from __future__ import annotations

import numpy as np

from detx.components.modeling.config import ModelConfig


def level_anchors(
    image_size: int,
    level: int,
    grid: tuple[int, int],
    anchor_scale: float,
    aspect_ratios: tuple[float, ...],
    scales_per_octave: int,
) -> np.ndarray:
    """The anchors of one level, normalized [ymin, xmin, ymax, xmax], in (row, column, anchor) order.

    Level l has stride 2**l and base size anchor_scale * 2**l pixels. Within a
    cell, aspect ratios are the outer loop and scales the inner one: for
    ratios (1, 2, 0.5) and two scales the order is (1, 1), (1, sqrt2), (2, 1),
    (2, sqrt2), (0.5, 1), (0.5, sqrt2); height = scale / sqrt(ratio) * base.

    The centre offset is half a stride only when the stride divides the image
    size, else 0: at 320 px, level 7 (stride 128) has its first centre at 0 px,
    not 64. This is the OD API's behaviour, kept so Zoo weights fit.

    Returns:
        [rows * cols * anchors_per_cell, 4] float32.
    """
    stride = 2**level
    offset = stride / 2 if image_size % stride == 0 else 0.0
    base = anchor_scale * stride
    scales = [2 ** (i / scales_per_octave) for i in range(scales_per_octave)]
    shapes = [
        (s / np.sqrt(ar) * base, s * np.sqrt(ar) * base) for ar in aspect_ratios for s in scales
    ]  # (height, width) per anchor in cell order
    rows, cols = grid
    out = np.empty((rows, cols, len(shapes), 4), dtype=np.float64)
    for i in range(rows):
        yc = offset + i * stride
        for j in range(cols):
            xc = offset + j * stride
            for a, (h, w) in enumerate(shapes):
                out[i, j, a] = (yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2)
    return (out.reshape(-1, 4) / image_size).astype(np.float32)


def feature_grid(image_size: int, level: int) -> tuple[int, int]:
    """Feature-map size at `level` for a square input (TF 'SAME' padding rounds up)."""
    side = image_size
    for _ in range(level):
        side = -(-side // 2)
    return side, side


def generate(config: ModelConfig) -> np.ndarray:
    """All anchors of a model, levels min..max concatenated: [num_anchors, 4]."""
    return np.concatenate(
        [
            level_anchors(
                config.image_size,
                level,
                feature_grid(config.image_size, level),
                config.anchor_scale,
                config.aspect_ratios,
                config.scales_per_octave,
            )
            for level in range(config.min_level, config.max_level + 1)
        ]
    )
