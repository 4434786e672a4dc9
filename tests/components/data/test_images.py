"""Image bytes as ingestion keeps them: decoded completely, RGB JPEG or PNG, measured like live requests."""

import io

import numpy as np
import pytest
from PIL import Image

from detx.components.data.images import (
    CorruptImage,
    TooManyPixels,
    array_brightness,
    image_statistics,
    normalize_image,
)


def _encode(pixels, fmt, mode="RGB"):
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, format=fmt)
    return out.getvalue()


PIXELS = np.tile(np.arange(0, 240, 5, dtype=np.uint8)[None, :, None], (32, 1, 3))  # 48 wide, 32 high


def test_rgb_jpeg_and_png_are_kept_byte_for_byte():
    for fmt, name in (("JPEG", "jpeg"), ("PNG", "png")):
        data = _encode(PIXELS, fmt)
        kept, out_fmt, width, height, _, conversion = normalize_image(data, "a", max_pixels=10_000, jpeg_quality=95)
        assert (kept, out_fmt, width, height, conversion) == (data, name, 48, 32, None)


def test_grayscale_png_becomes_rgb_png_and_says_so():
    data, fmt, *_, conversion = normalize_image(_encode(PIXELS, "PNG", "L"), "a", 10_000, 95)
    assert fmt == "png" and conversion == "png/l->rgb"
    assert Image.open(io.BytesIO(data)).mode == "RGB"


def test_refusals_name_the_file():
    with pytest.raises(TooManyPixels, match=r"big\.png is 48x32 = 1,536 pixels, over the limit of 1,000"):
        normalize_image(_encode(PIXELS, "PNG"), "big.png", 1_000, 95)
    with pytest.raises(CorruptImage, match=r"junk\.jpg is not a readable image"):
        normalize_image(b"not an image", "junk.jpg", 10_000, 95)
    with pytest.raises(CorruptImage, match=r"cut\.jpg is corrupt or truncated"):
        normalize_image(_encode(np.tile(PIXELS, (8, 8, 1)), "JPEG")[:-2000], "cut.jpg", 200_000, 95)


def test_statistics_of_bytes_and_of_arrays_agree():
    width, height, brightness = image_statistics(_encode(PIXELS, "PNG"))
    assert (width, height) == (48, 32)
    assert brightness == pytest.approx(array_brightness(PIXELS), abs=0.5)
    with pytest.raises(ValueError, match="not a readable image"):
        image_statistics(b"junk")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_tagged_photos_and_keeps_upright_bytes(orientation):
    from PIL import ImageOps

    from detx.components.data.images import EXIF_ORIENTATION, read_header, upright
    from testing.data import PHOTO_BOX, exif_photo, photo_scene, red_box

    data = exif_photo(photo_scene(), orientation)
    header = read_header(data, "phone.jpg", 10_000)
    assert header.orientation == orientation and header.displayed_size == (120, 80)
    assert (header.width, header.height) == ((80, 120) if orientation >= 5 else (120, 80))
    turned, applied = upright(data)
    assert applied == orientation
    assert (turned == data) is (orientation == 1)  # upright bytes travel unchanged
    with Image.open(io.BytesIO(turned)) as img:
        assert img.format == "JPEG"
        assert EXIF_ORIENTATION not in img.getexif() or orientation == 1
        assert red_box(np.asarray(img.convert("RGB"))) == PHOTO_BOX
        # Pillow's own exif_transpose agrees (the turn is not detx's private reading of the tag).
        assert red_box(np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))) == PHOTO_BOX


def test_upright_keeps_untagged_bytes_and_refuses_non_images():
    from detx.components.data.images import upright

    data = _encode(PIXELS, "PNG")
    assert upright(data) == (data, 1)
    with pytest.raises(ValueError, match="not a readable image"):
        upright(b"not an image")
