"""The synthetic painter: box overlap, shapes inside their half-open boxes, reproducible backgrounds."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from detx.components.data.synth_draw import background, draw_shape, iou


def test_iou_of_half_open_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching boxes share no pixel
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


@pytest.mark.parametrize("name", ["circle", "square", "triangle", "cross"])
def test_every_shape_stays_inside_its_box(name):
    canvas = Image.new("L", (40, 30), 0)
    draw_shape(ImageDraw.Draw(canvas), name, (5, 4, 25, 24), (255,), up=True)
    ys, xs = np.nonzero(np.asarray(canvas))
    assert xs.min() >= 5 and xs.max() <= 24 and ys.min() >= 4 and ys.max() <= 23


def test_background_is_reproducible_from_the_generator():
    a = background(np.random.default_rng([3, 1]), 64, 48)
    b = background(np.random.default_rng([3, 1]), 64, 48)
    assert a.shape == (48, 64, 3) and np.array_equal(a, b)
