"""Image bytes as ingestion keeps them: fully decodable, upright, RGB JPEG or PNG, measured like `detx/stats/*`.

`records.build_example` calls `read_header` and `normalize_image` for every
record and turns their errors into quarantine reasons; the model server calls
`image_statistics` and `array_brightness` on live requests, so serving-time
images are measured exactly like the training data; the prediction client
calls `upright` so that a phone photo reaches the model the way a person sees
it. This module knows images only: no records, no labels, no tf.Example.

EXIF orientation: cameras and phones store the sensor's pixels as they were
read out and add a tag (EXIF 0x0112, values 1-8) saying how to turn or mirror
them for display. Viewers, browsers and labelling tools (CVAT, Label Studio,
Roboflow) obey it; TensorFlow's image decoders ignore it. Orientations 5-8
swap width and height; 2-4 keep them.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from typing import Literal

import numpy as np
from PIL import Image

# Pillow refuses images over 2x this many pixels before detx can name the limit;
# detx applies its own, configurable limit instead (DataLimits.max_pixels).
Image.MAX_IMAGE_PIXELS = None


class CorruptImage(ValueError):
    """The bytes are not a readable image, or are truncated or corrupt; the message names the file."""


class TooManyPixels(ValueError):
    """The image is over the pixel limit; the message names the file, its size and the fix."""


EXIF_ORIENTATION = 0x0112
# Orientation -> the transpose that shows the stored pixels as intended (EXIF 2.32, tag 0x0112;
# the same table as Pillow's ImageOps.exif_transpose). 1 (upright) needs none.
_TO_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# `normalize_image`'s conversion note for a photo turned upright is "exif/<orientation>->upright";
# several notes are joined with "+" (e.g. "jpeg/cmyk->rgb+exif/6->upright").
UPRIGHT_NOTE_PREFIX = "exif/"
NOTE_SEPARATOR = "+"


def exif_orientation(img: Image.Image) -> int:
    """The image's EXIF orientation, 1-8; 1 without a tag or with a value outside 1-8, which viewers ignore too."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # A damaged EXIF block must not reject an image that decodes; viewers show it unturned.
        return 1
    return value if isinstance(value, int) and value in _TO_UPRIGHT else 1


def displayed_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) as the image is displayed: orientations 5-8 turn it by 90 degrees."""
    return (height, width) if orientation >= 5 else (width, height)


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding its pixels.

    Attributes:
        width, height: of the stored pixels (the raw frame).
        orientation: EXIF orientation, 1-8 (1: stored upright).
    """

    width: int
    height: int
    orientation: int

    @property
    def displayed_size(self) -> tuple[int, int]:
        """(width, height) as viewers and labelling tools show the image (the displayed frame)."""
        return displayed_size(self.width, self.height, self.orientation)


def _open(data: bytes, file: str, max_pixels: int) -> Image.Image:
    """Opens the bytes lazily (header only) and refuses images over the pixel limit before any decoding."""
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
    return img


def read_header(data: bytes, file: str, max_pixels: int) -> ImageHeader:
    """The stored size and EXIF orientation of encoded image bytes, without decoding the pixels.

    Raises:
        CorruptImage: the header is not a readable image's.
        TooManyPixels: the image has more than `max_pixels` pixels.
    """
    img = _open(data, file, max_pixels)
    return ImageHeader(img.size[0], img.size[1], exif_orientation(img))


def upright(data: bytes, jpeg_quality: int = 95) -> tuple[bytes, int]:
    """The image as a person sees it, for a model whose decoder ignores EXIF.

    Bytes whose orientation is 1 (or absent) come back unchanged; others are
    turned or mirrored, and re-encoded without EXIF (JPEG stays JPEG at
    `jpeg_quality`, anything else becomes PNG).

    Returns:
        (encoded bytes, the orientation that was applied: 1 for none)

    Raises:
        ValueError: the bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = exif_orientation(img)
            if orientation == 1:
                return data, 1
            fmt = img.format
            turned = img.transpose(_TO_UPRIGHT[orientation])
    except Exception as e:  # Pillow raises several types for undecodable bytes.
        raise ValueError(f"not a readable image ({e})") from e
    out = io.BytesIO()
    if fmt == "JPEG":
        turned.save(out, format="JPEG", quality=jpeg_quality)
    else:
        turned.save(out, format="PNG")
    return out.getvalue(), orientation


def with_upright_tag(data: bytes) -> bytes:
    """JPEG bytes whose EXIF orientation entry says 1 (upright), pixels and everything else byte for byte.

    For a photo whose boxes were drawn on the pixels as stored: readers that obey
    the tag (Pillow, browsers, detx's exported graph) must then see those pixels
    as they are. The entry's value is rewritten in place (EXIF 2.3: APP1 "Exif",
    TIFF header, IFD0, tag 0x0112, a SHORT), so nothing is re-encoded. Other
    bytes (no JPEG, no EXIF, no orientation entry) come back unchanged.
    """
    found = data.find(b"Exif\x00\x00", 0, 65536) if data[:2] == b"\xff\xd8" else -1
    start = found + 6
    tiff = data[start:]
    if found < 0 or tiff[:2] not in (b"II", b"MM"):
        return data
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    for k in range(int.from_bytes(tiff[ifd : ifd + 2], order)):
        entry = ifd + 2 + 12 * k
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112 and len(tiff) >= entry + 10:
            value = start + entry + 8
            return data[:value] + (1).to_bytes(2, order) + data[value + 2 :]
    return data


def upright_image(img: Image.Image) -> Image.Image:
    """A decoded image turned as its EXIF orientation says (the same image when it is upright)."""
    orientation = exif_orientation(img)
    return img if orientation == 1 else img.transpose(_TO_UPRIGHT[orientation])


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
    data: bytes, file: str, max_pixels: int, jpeg_quality: int, make_upright: bool = False
) -> tuple[bytes, str, int, int, float, str | None]:
    """Checks that `data` decodes completely and returns it as RGB JPEG or PNG.

    RGB JPEG and RGB PNG bytes are kept as they are (no re-encoding loss).
    Other modes and formats are converted: grayscale, CMYK and palette images
    to RGB; alpha composited on white; JPEG stays JPEG, everything else becomes PNG.
    With `make_upright`, a photo whose EXIF orientation is not 1 is turned as
    a viewer shows it and re-encoded without EXIF; without it, its bytes and
    tag are kept (the caller's boxes are in the stored frame).

    Args:
        data: the encoded image.
        file: where the bytes came from, for messages.
        max_pixels: larger images are refused before they are decoded.
        jpeg_quality: quality of a JPEG that must be re-encoded.
        make_upright: apply the EXIF orientation to the pixels.

    Returns:
        (encoded bytes, "jpeg"|"png", width, height, brightness, conversion or None).
        Width and height are of the returned pixels. The conversion notes what
        was done, e.g. "png/rgba->rgb", "exif/6->upright", or both joined by "+".

    Raises:
        CorruptImage: the bytes do not decode completely.
        TooManyPixels: the image has more than `max_pixels` pixels.
    """
    img = _open(data, file, max_pixels)
    width, height = img.size
    orientation = exif_orientation(img) if make_upright else 1
    fmt, mode = img.format, img.mode
    try:
        if fmt == "JPEG" and mode == "RGB" and orientation == 1:
            # Decoding at 1/8 scale (libjpeg DCT scaling) still reads every
            # entropy-coded block, so truncation and corruption are caught at a
            # fraction of a full decode's cost; brightness needs no more detail.
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
            return data, "jpeg", width, height, _brightness(img), None
        img.load()
    except Exception as e:
        raise CorruptImage(f"{file} is corrupt or truncated ({e})") from e
    if fmt == "PNG" and mode == "RGB" and orientation == 1:
        return data, "png", width, height, _brightness(img), None
    notes = []
    if fmt in ("JPEG", "PNG") and mode == "RGB":
        rgb = img
    else:
        notes.append(f"{(fmt or 'unknown').lower()}/{mode.lower()}->rgb")
        rgb = _to_rgb(img)
    if orientation != 1:
        rgb = rgb.transpose(_TO_UPRIGHT[orientation])
        notes.append(f"{UPRIGHT_NOTE_PREFIX}{orientation}->upright")
    conversion = NOTE_SEPARATOR.join(notes)
    width, height = rgb.size
    out = io.BytesIO()
    # Saved without `exif=`: the orientation tag (with the rest of EXIF) is gone, so no reader turns it twice.
    if fmt == "JPEG":
        rgb.save(out, format="JPEG", quality=jpeg_quality)
        return out.getvalue(), "jpeg", width, height, _brightness(rgb), conversion
    rgb.save(out, format="PNG")
    return out.getvalue(), "png", width, height, _brightness(rgb), conversion


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode to RGB: alpha composited on white, 16-bit and float scaled to 8 bits."""
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _to_8bit(img)
    return img.convert("RGB")


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit or float grayscale to 8-bit RGB.

    16-bit images are scaled by their full range (65535 is white); 32-bit and
    float images, which have no nominal white, by their maximum.
    """
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
    return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
