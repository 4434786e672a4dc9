"""One image file to upright RGB pixels, or the reason it is skipped (never an exception that stops the job)."""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from detx.components.batch_inference.records import SkippedImage
from detx.components.data.images import CorruptImage, TooManyPixels, read_header, upright_image


def read_bytes(path: str) -> bytes:
    """The file's bytes: plain `open` on the local disk, TensorFlow's file systems (gs://, s3://) otherwise."""
    if "://" not in path:
        with open(path, "rb") as f:
            return f.read()
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def decode(root: str, rel: str, max_pixels: int) -> np.ndarray | SkippedImage:
    """The image `root/rel` as the model should see it: [H, W, 3] uint8, turned upright by its EXIF orientation.

    Boxes are then in the frame people see (and labelling tools show), as `detx predict`'s are.

    Returns:
        The pixels, or a SkippedImage naming the reason (unreadable file, not an image,
        corrupt or truncated, over `max_pixels`).
    """
    path = os.path.join(root, rel)
    try:
        data = read_bytes(path)
    except (OSError, tf.errors.OpError) as e:
        return SkippedImage(rel, f"unreadable: {e}")
    try:
        # The header first: an oversized image is refused before its pixels are decoded.
        read_header(data, rel, max_pixels)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            pixels = np.asarray(upright_image(img).convert("RGB"))
    except TooManyPixels as e:
        return SkippedImage(rel, f"too large: {e}")
    except CorruptImage as e:
        return SkippedImage(rel, f"not an image: {e}")
    except Exception as e:  # Pillow raises several types for truncated or corrupt pixel data.
        return SkippedImage(rel, f"corrupt or truncated: {rel} ({e})")
    if pixels.size == 0:
        return SkippedImage(rel, f"empty: {rel} has no pixels")
    return pixels
