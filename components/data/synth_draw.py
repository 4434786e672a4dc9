"""How the synthetic dataset paints: textured backgrounds, the shapes, and how much two boxes overlap.

Pixel drawing only, with no notion of a dataset, labels or file formats
(`synth.py` decides what is drawn where). Every random draw comes from the
generator the caller passes, in a fixed order, so an image is reproducible.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw


@functools.lru_cache(maxsize=4)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return xx / width - 0.5, yy / height - 0.5


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth gradient with one of three textures: plain, stripes, or blotches."""
    gx, gy = _grid(width, height)
    base = rng.uniform(40, 215, size=3).astype(np.float32)
    slope_x, slope_y = rng.uniform(-70, 70, size=(2, 3)).astype(np.float32)
    img = base + gx[..., None] * slope_x + gy[..., None] * slope_y
    kind = int(rng.integers(3))
    if kind == 1:
        fx, fy = rng.uniform(-12, 12, size=2)
        amp = rng.uniform(8, 30, size=3).astype(np.float32)
        img += np.sin(2 * np.pi * (fx * gx + fy * gy) + rng.uniform(0, 2 * np.pi))[..., None] * amp
    elif kind == 2:
        small = rng.normal(0, 28, size=(height // 40 + 2, width // 40 + 2, 3)).astype(np.float32)
        blotches = Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BILINEAR
        )
        img += np.asarray(blotches, dtype=np.float32) - 128
    return img


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two half-open pixel boxes (x0, y0, x1, y1)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def draw_shape(
    draw: ImageDraw.ImageDraw, name: str, box: tuple[int, int, int, int], colour: tuple[int, ...], up: bool
) -> None:
    """Fills the shape `name` ("circle", "square", "cross", else a triangle, pointing up or down) into its box."""
    # Pillow's shape coordinates are inclusive pixel indices, hence the -1s.
    x0, y0, x1, y1 = box
    if name == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif name == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif name == "cross":
        # A plus sign: two bars a third of the box thick.
        tx, ty = (x1 - x0) // 3, (y1 - y0) // 3
        draw.rectangle([x0 + tx, y0, x1 - 1 - tx, y1 - 1], fill=colour)
        draw.rectangle([x0, y0 + ty, x1 - 1, y1 - 1 - ty], fill=colour)
    else:
        apex = (x0 + x1 - 1) / 2
        pts = [(x0, y1 - 1), (x1 - 1, y1 - 1), (apex, y0)] if up else [(x0, y0), (x1 - 1, y0), (apex, y1 - 1)]
        draw.polygon(pts, fill=colour)
