"""A difference hash (dHash): near-duplicate images have hashes a few bits apart.

The image is shrunk to 9x8 grey pixels; each bit says whether a pixel is
brighter than its right neighbour. Re-encoding, resizing and small edits keep
most bits; different scenes differ in about half of the 64. E.g. one photo
saved at JPEG quality 95 and at 60 are typically 0-3 bits apart.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from detx.components.data.images import upright_image

HASH_SIZE = 8
# At most this many of the 64 bits differ between near-duplicates.
NEAR_DUPLICATE_BITS = 6


def dhash(data: bytes) -> int:
    """The 64-bit dHash of encoded image bytes, of the image as displayed (EXIF applied).

    Raises:
        OSError, ValueError: the bytes are not a readable image (Pillow's errors).
    """
    with Image.open(io.BytesIO(data)) as img:
        grey = upright_image(img).convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.LANCZOS)
        pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def distance(a: int, b: int) -> int:
    """How many bits two hashes differ in."""
    return (a ^ b).bit_count()
