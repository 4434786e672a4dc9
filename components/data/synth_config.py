"""How a synthetic dataset is drawn (`SynthConfig`): a light module, so `detx data synth --help` shows its defaults.

The generator itself (synth.py) imports the data code, which imports TensorFlow;
the command line reads the defaults from here instead of repeating them.
"""

from __future__ import annotations

import dataclasses

CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
# Every shape the generator can draw: a dataset uses CLASSES unless its config
# names others (a later span may bring a class the first ones lacked).
SHAPES: tuple[str, ...] = (*CLASSES, "cross")


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """How a synthetic dataset is drawn.

    Attributes:
        num_images: how many images.
        seed: the dataset seed.
        width, height: image size in pixels.
        max_objects: most objects in one image.
        empty_fraction: share of images with no object (hard negatives).
        min_size, max_size: object size range in pixels.
        class_weights: relative frequency of each class, in `classes` order.
        brightness: multiplies every pixel before noise (below 1 is darker).
        jpeg_quality: JPEG quality of the written images.
        first_id: id of the first image; later spans continue the numbering.
        classes: the shapes drawn (from SHAPES); their label ids follow SHAPES' order.
    """

    num_images: int
    seed: int = 0
    width: int = 640
    height: int = 480
    max_objects: int = 6
    empty_fraction: float = 0.1
    min_size: int = 24
    max_size: int = 160
    class_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    brightness: float = 1.0
    jpeg_quality: int = 90
    first_id: int = 1
    classes: tuple[str, ...] = CLASSES

    def __post_init__(self) -> None:
        if self.num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {self.num_images}")
        unknown = [c for c in self.classes if c not in SHAPES]
        if unknown or not self.classes:
            raise ValueError(f"classes must be some of {', '.join(SHAPES)}, got {self.classes}")
        n = len(self.classes)
        if len(self.class_weights) != n or min(self.class_weights) < 0 or sum(self.class_weights) <= 0:
            raise ValueError(f"class_weights needs {n} non-negative weights (one per class) with a positive sum")
        if not 0 < self.min_size <= self.max_size <= min(self.width, self.height):
            raise ValueError(
                f"need 0 < min_size <= max_size <= min(width, height), got {self.min_size}, {self.max_size}"
            )
