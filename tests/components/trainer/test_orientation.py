"""EXIF orientation read and applied with TensorFlow ops equals Pillow's, for orientations 1-8."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from detx.components.trainer.orientation import exif_orientation, upright
from testing.data import exif_photo, photo_scene, red_box


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_phone_photo_comes_out_of_the_graph_as_pillow_shows_it(orientation):
    scene = photo_scene()
    data = exif_photo(scene, orientation)
    assert int(exif_orientation(tf.constant(data))) == orientation
    decoded = tf.io.decode_jpeg(data, channels=3)
    turned = upright(decoded, exif_orientation(tf.constant(data))).numpy()
    with Image.open(io.BytesIO(data)) as image:
        shown = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert turned.shape == shown.shape == scene.shape
    assert red_box(turned) == red_box(shown) == red_box(scene)  # the off-centre block where people see it


def test_images_without_a_readable_tag_stay_as_they_are():
    scene = photo_scene()
    png_tagged = exif_photo(scene, 6, fmt="PNG")  # PNG's eXIf chunk is not read: upright assumed
    plain = tf.io.encode_jpeg(tf.constant(scene)).numpy()
    for data in (plain, png_tagged, b"", b"\xff\xd8Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff", b"not an image"):
        assert int(exif_orientation(tf.constant(data))) == 1


def test_the_tag_is_found_after_other_entries_in_either_byte_order():
    image = Image.fromarray(photo_scene())
    exif = Image.Exif()
    exif[0x010F] = "detx"  # Make, an entry before Orientation
    exif[0x0110] = "test model"  # Model, longer than 4 bytes: stored at an offset
    exif[0x0112] = 8
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    data = out.getvalue()
    start = data.index(b"Exif\x00\x00") + 6
    swapped = _swap_byte_order(data[start:])
    other = data[:start] + swapped + data[start + len(swapped) :]
    assert {data[start : start + 2], other[start : start + 2]} == {b"II", b"MM"}
    for encoded in (data, other):
        assert int(exif_orientation(tf.constant(encoded))) == 8


def _swap_byte_order(tiff: bytes) -> bytes:
    """The TIFF header and IFD0 entries (SHORT and ASCII only) of `tiff` rewritten in the other byte order."""
    src = "little" if tiff[:2] == b"II" else "big"
    dst = "big" if src == "little" else "little"

    def swap(start: int, size: int) -> None:
        out[start : start + size] = int.from_bytes(tiff[start : start + size], src).to_bytes(size, dst)

    out = bytearray(tiff)
    out[0:2] = b"MM" if dst == "big" else b"II"
    swap(2, 2)
    swap(4, 4)
    ifd = int.from_bytes(tiff[4:8], src)
    count = int.from_bytes(tiff[ifd : ifd + 2], src)
    swap(ifd, 2)
    for k in range(count):
        entry = ifd + 2 + 12 * k
        kind, n = int.from_bytes(tiff[entry + 2 : entry + 4], src), int.from_bytes(tiff[entry + 4 : entry + 8], src)
        swap(entry, 2)
        swap(entry + 2, 2)
        swap(entry + 4, 4)
        if kind == 3:  # SHORT: the value in the field's first two bytes
            swap(entry + 8, 2)
        elif n > 4:  # ASCII that does not fit: an offset
            swap(entry + 8, 4)
    return bytes(out)


def test_the_exported_signatures_see_a_tagged_photo_upright(tmp_path):
    from tests.serving.conftest import export_tiny

    model = tf.saved_model.load(export_tiny(str(tmp_path / "m"), seed=1, batching=None))
    scene = photo_scene()
    # A client that sends the phone's bytes gets the answer for the photo as displayed: the same
    # detections as for the upright pixels (raw, through serving_default).
    want = model.signatures["serving_default"](input_tensor=tf.constant(scene[None]))
    for orientation in (1, 3, 6, 7):
        got = model.signatures["encoded_image"](encoded_image=tf.constant([exif_photo(scene, orientation)]))
        np.testing.assert_allclose(got["detection_boxes"], want["detection_boxes"], atol=0.02)
