"""Batch-inference fixtures: a tiny exported detector and a folder of ~20 small images with bad ones among them."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from tests.serving.conftest import export_tiny

# Under this limit (pixels) every good image fits and BIG does not.
MAX_PIXELS = 20_000
CORRUPT = "bad/truncated.jpg"
NOT_AN_IMAGE = "bad/notes.png"
BIG = "big.png"
ROTATED = "phone/rotated.jpg"  # stored 60x40 with EXIF orientation 6: people (and the model) see 40x60


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def write_images(root: str, count: int = 16, seed: int = 0) -> list[str]:
    """Writes `count` good PNGs of two sizes (in nested folders), one EXIF-rotated JPEG and three bad files.

    Returns the good images' relative paths.
    """
    rng = np.random.default_rng(seed)
    good = []
    for i in range(count):
        h, w = (64, 96) if i % 3 else (80, 80)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[h // 4 : h // 2, w // 4 : w // 2] = (255, 0, 0)  # something box-like
        rel = f"{'a' if i % 2 else 'b/c'}/img{i:02d}.png"
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(_png(pixels))
        good.append(rel)
    stored = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(stored).save(out, format="JPEG", quality=95, exif=exif)
    os.makedirs(os.path.join(root, "phone"), exist_ok=True)
    with open(os.path.join(root, ROTATED), "wb") as f:
        f.write(out.getvalue())
    good.append(ROTATED)
    os.makedirs(os.path.join(root, "bad"), exist_ok=True)
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    with open(os.path.join(root, CORRUPT), "wb") as f:
        f.write(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    with open(os.path.join(root, NOT_AN_IMAGE), "w") as f:
        f.write("not a picture\n")
    with open(os.path.join(root, BIG), "wb") as f:
        f.write(_png(np.zeros((200, 200, 3), dtype=np.uint8)))
    with open(os.path.join(root, "README.txt"), "w") as f:  # not an image extension: not listed
        f.write("x")
    return sorted(good)


def shared_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny preset with random weights, exported by detx once per test process (its label map names 3 classes).

    Kept under the session's base temp folder, so the CLI tests in tests/pipeline reuse it too; nothing writes to it.
    """
    path = tmp_path_factory.getbasetemp() / "batch-inference-tiny" / "model"
    if not (path / "saved_model.pb").exists():
        export_tiny(str(path), seed=1)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The shared tiny detector (`shared_tiny_model`)."""
    return shared_tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """~20 small images, three of them bad."""
    root = str(tmp_path_factory.mktemp("images"))
    write_images(root)
    return root
