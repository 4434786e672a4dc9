"""Image bytes as ingestion keeps them: fully decodable, RGB JPEG or PNG, measured as `detx/stats/*` measures them.

`records.build_example` calls `normalize_image` for every record and turns its
errors into quarantine reasons; the model server calls `image_statistics` and
`array_brightness` on live requests, so serving-time images are measured
exactly like the training data. This module knows images only: no records,
no labels, no tf.Example.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

# Pillow refuses images over 2x this many pixels before detx can name the limit;
# detx applies its own, configurable limit instead (DataLimits.max_pixels).
Image.MAX_IMAGE_PIXELS = None


class CorruptImage(ValueError):
    """The bytes are not a readable image, or are truncated or corrupt; the message names the file."""


class TooManyPixels(ValueError):
    """The image is over the pixel limit; the message names the file, its size and the fix."""


def _brightness(img: Image.Image) -> float:
    """Mean luma (0-255) of an image; computed on a decoded, possibly reduced, copy."""
    return float(np.asarray(img.convert("L"), dtype=np.float32).mean())


def image_statistics(data: bytes) -> tuple[int, int, float]:
    """Width, height and brightness of encoded image bytes, as ingestion measures them (`detx/stats/*`).

    The model server logs these for live requests, so that serving-time images
    can be compared with the training data (training/serving skew).

    Raises:
        ValueError: the bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if img.format == "JPEG":
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            return width, height, _brightness(img)
    except Exception as e:  # Pillow raises several types for undecodable bytes.
        raise ValueError(f"not a readable image ({e})") from e


def array_brightness(pixels: np.ndarray) -> float:
    """Mean luma (0-255) of an [H, W, 3] RGB array, with Pillow's "L" conversion weights."""
    rgb = np.asarray(pixels, dtype=np.float32)
    return float((rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).mean())


def normalize_image(
    data: bytes, file: str, max_pixels: int, jpeg_quality: int
) -> tuple[bytes, str, int, int, float, str | None]:
    """Checks that `data` decodes completely and returns it as RGB JPEG or PNG.

    RGB JPEG and RGB PNG bytes are kept as they are (no re-encoding loss).
    Other modes and formats are converted: grayscale, CMYK and palette images
    to RGB; alpha composited on white; JPEG stays JPEG, everything else becomes PNG.

    Args:
        data: the encoded image.
        file: where the bytes came from, for messages.
        max_pixels: larger images are refused before they are decoded.
        jpeg_quality: quality of a JPEG that must be re-encoded.

    Returns:
        (encoded bytes, "jpeg"|"png", width, height, brightness, conversion or None)

    Raises:
        CorruptImage: the bytes do not decode completely.
        TooManyPixels: the image has more than `max_pixels` pixels.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Exception as e:  # Pillow raises several types for undecodable headers.
        raise CorruptImage(f"{file} is not a readable image ({e})") from e
    width, height = img.size
    if width * height > max_pixels:
        raise TooManyPixels(
            f"{file} is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}; "
            "downscale it or raise max_pixels"
        )
    fmt, mode = img.format, img.mode
    try:
        if fmt == "JPEG" and mode == "RGB":
            # Decoding at 1/8 scale (libjpeg DCT scaling) still reads every
            # entropy-coded block, so truncation and corruption are caught at a
            # fraction of a full decode's cost; brightness needs no more detail.
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
            return data, "jpeg", width, height, _brightness(img), None
        img.load()
    except Exception as e:
        raise CorruptImage(f"{file} is corrupt or truncated ({e})") from e
    if fmt == "PNG" and mode == "RGB":
        return data, "png", width, height, _brightness(img), None
    conversion = f"{(fmt or 'unknown').lower()}/{mode.lower()}->rgb"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
    elif mode.startswith("I") or mode == "F":
        rgb = _to_8bit(img)
    else:
        rgb = img.convert("RGB")
    out = io.BytesIO()
    if fmt == "JPEG":
        rgb.save(out, format="JPEG", quality=jpeg_quality)
        return out.getvalue(), "jpeg", width, height, _brightness(rgb), conversion
    rgb.save(out, format="PNG")
    return out.getvalue(), "png", width, height, _brightness(rgb), conversion


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit or float grayscale to 8-bit RGB.

    16-bit images are scaled by their full range (65535 is white); 32-bit and
    float images, which have no nominal white, by their maximum.
    """
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
    return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
