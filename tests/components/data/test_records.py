import io
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from detx.components.data import features as F
from detx.components.data.label_map import LabelMap
from detx.components.data.records import (
    Converted,
    DataLimits,
    Reject,
    RejectReason,
    SourceBox,
    SourceRecord,
    build_example,
)

LM = LabelMap(("circle", "square"))
RESOLVE = {2: 1, 5: 2}


def _image(mode="RGB", size=(64, 48), fmt="JPEG", value=128):
    arr = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    arr[: size[1] // 2] = 30
    img = Image.fromarray(arr).convert(mode)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def _record(data=None, boxes=(SourceBox(2, 10, 5, 30, 25),), path=None, declared=(64, 48), normalized=False):
    return SourceRecord(
        image_id="img1",
        filename="img1.jpg",
        boxes=tuple(boxes),
        image_path=path,
        image_bytes=None if path else (data if data is not None else _image()),
        declared_size=declared,
        normalized_boxes=normalized,
        annotation_file="ann.json",
    )


def _convert(record, limits=DataLimits()):
    return build_example(record, RESOLVE, LM, limits)


def _feature(example, key):
    f = example.features.feature[key]
    return list(getattr(f, f.WhichOneof("kind")).value)


def test_valid_rgb_jpeg_becomes_an_od_api_example_with_bytes_unchanged():
    data = _image()
    out = _convert(_record(data))
    assert isinstance(out, Converted) and out.conversion is None
    ex = out.example
    assert _feature(ex, F.ENCODED) == [data]
    assert _feature(ex, F.FORMAT) == [b"jpeg"]
    assert _feature(ex, F.WIDTH) == [64] and _feature(ex, F.HEIGHT) == [48]
    assert _feature(ex, F.SOURCE_ID) == [b"img1"] and _feature(ex, F.FILENAME) == [b"img1.jpg"]
    assert _feature(ex, F.XMIN) == pytest.approx([10 / 64])
    assert _feature(ex, F.XMAX) == pytest.approx([30 / 64])
    assert _feature(ex, F.YMIN) == pytest.approx([5 / 48])
    assert _feature(ex, F.YMAX) == pytest.approx([25 / 48])
    assert _feature(ex, F.LABEL) == [1] and _feature(ex, F.TEXT) == [b"circle"]
    assert _feature(ex, F.IS_CROWD) == [0]
    assert _feature(ex, F.NUM_OBJECTS) == [1]
    assert _feature(ex, F.BOX_ASPECT) == pytest.approx([1.0])  # 20x20 px
    assert _feature(ex, F.BOX_AREA) == pytest.approx([(20 / 64) * (20 / 48)])
    # Half the image is 30, half 128: the brightness is their mean, within JPEG error.
    assert _feature(ex, F.BRIGHTNESS)[0] == pytest.approx(79, abs=3)
    # TensorFlow decodes what was written.
    decoded = tf.io.decode_image(_feature(ex, F.ENCODED)[0])
    assert tuple(decoded.shape) == (48, 64, 3)


def test_image_without_objects_is_kept_with_empty_lists():
    out = _convert(_record(boxes=()))
    assert isinstance(out, Converted)
    assert _feature(out.example, F.XMIN) == [] and _feature(out.example, F.NUM_OBJECTS) == [0]


def test_missing_image_file_is_rejected_with_path(tmp_path):
    out = _convert(_record(path=str(tmp_path / "gone.jpg")))
    assert isinstance(out, Reject) and out.reason is RejectReason.MISSING_IMAGE
    assert "gone.jpg does not exist" in out.detail


def test_truncated_jpeg_is_rejected():
    data = _image(size=(320, 240))
    out = _convert(_record(data[: len(data) // 2], declared=(320, 240)))
    assert isinstance(out, Reject) and out.reason is RejectReason.CORRUPT_IMAGE
    assert "corrupt or truncated" in out.detail


def test_garbage_bytes_are_rejected():
    out = _convert(_record(b"not an image at all"))
    assert isinstance(out, Reject) and out.reason is RejectReason.CORRUPT_IMAGE
    assert "not a readable image" in out.detail


@pytest.mark.parametrize(
    ("mode", "fmt", "expected_format", "conversion"),
    [
        ("RGB", "PNG", b"png", None),
        ("RGBA", "PNG", b"png", "png/rgba->rgb"),
        ("L", "PNG", b"png", "png/l->rgb"),
        ("P", "PNG", b"png", "png/p->rgb"),
        ("L", "JPEG", b"jpeg", "jpeg/l->rgb"),
        ("CMYK", "JPEG", b"jpeg", "jpeg/cmyk->rgb"),
        ("RGB", "BMP", b"png", "bmp/rgb->rgb"),
    ],
)
def test_other_formats_and_modes_become_rgb_jpeg_or_png(mode, fmt, expected_format, conversion):
    out = _convert(_record(_image(mode=mode, fmt=fmt)))
    assert isinstance(out, Converted), out
    assert out.conversion == conversion
    assert _feature(out.example, F.FORMAT) == [expected_format]
    decoded = tf.io.decode_image(_feature(out.example, F.ENCODED)[0], channels=0)
    assert tuple(decoded.shape) == (48, 64, 3)  # TensorFlow sees 3 channels


def test_rgba_is_composited_on_white():
    arr = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, format="PNG")
    out = _convert(_record(buf.getvalue(), boxes=(), declared=(8, 8)))
    assert isinstance(out, Converted)
    pixels = np.asarray(Image.open(io.BytesIO(_feature(out.example, F.ENCODED)[0])))
    assert pixels.min() == 255


def test_sixteen_bit_grayscale_png_is_scaled_to_eight_bits():
    arr = np.full((8, 8), 65535, dtype=np.uint16)
    arr[:4] = 0
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = _convert(_record(buf.getvalue(), boxes=(), declared=(8, 8)))
    assert isinstance(out, Converted) and out.conversion and out.conversion.startswith("png/i")
    pixels = np.asarray(Image.open(io.BytesIO(_feature(out.example, F.ENCODED)[0])))
    assert pixels[:4].max() == 0 and pixels[4:].min() == 255


@pytest.mark.parametrize(
    ("box", "reason", "text"),
    [
        (SourceBox(2, 30, 5, 10, 25), RejectReason.BAD_BOX, "width -20"),
        (SourceBox(2, 10, 25, 30, 25), RejectReason.BAD_BOX, "height 0"),
        (SourceBox(2, math.nan, 5, 30, 25), RejectReason.BAD_BOX, "not a finite number"),
        (SourceBox(2, 50, 5, 80, 25), RejectReason.BOX_OUTSIDE_IMAGE, "outside the 64x48 image by more than 2 px"),
        (SourceBox(2, -5, 5, 30, 25), RejectReason.BOX_OUTSIDE_IMAGE, "outside"),
        (SourceBox(7, 10, 5, 30, 25), RejectReason.UNKNOWN_CATEGORY, "category 7, which is not in the label map"),
    ],
)
def test_bad_boxes_are_rejected_with_the_reason(box, reason, text):
    out = _convert(_record(boxes=(SourceBox(5, 1, 1, 9, 9), box)))
    assert isinstance(out, Reject)
    assert out.reason is reason
    assert text in out.detail and ("box 1" in out.detail or "object 1" in out.detail)
    assert out.file == "ann.json"


def test_box_overshooting_within_tolerance_is_clipped():
    out = _convert(_record(boxes=(SourceBox(2, -1.5, 0, 64.5, 48),)))
    assert isinstance(out, Converted) and out.num_clipped == 1
    assert _feature(out.example, F.XMIN) == [0.0] and _feature(out.example, F.XMAX) == [1.0]


def test_normalized_boxes_use_the_real_image_size():
    out = _convert(_record(boxes=(SourceBox(2, 0.25, 0.5, 0.75, 1.0),), normalized=True))
    assert isinstance(out, Converted)
    assert _feature(out.example, F.BOX_ASPECT) == pytest.approx([(0.5 * 64) / (0.5 * 48)])
    out = _convert(_record(boxes=(SourceBox(2, 0.5, 0.5, 1.2, 1.0),), normalized=True))
    assert isinstance(out, Reject) and out.reason is RejectReason.BOX_OUTSIDE_IMAGE


def test_label_text_that_disagrees_with_the_label_map_is_rejected():
    out = _convert(_record(boxes=(SourceBox(2, 1, 1, 9, 9, text="dog"),)))
    assert isinstance(out, Reject) and out.reason is RejectReason.UNKNOWN_CATEGORY
    assert "text 'dog'" in out.detail and "'circle'" in out.detail


def test_image_over_the_pixel_limit_is_rejected_before_decoding():
    out = _convert(_record(_image(size=(200, 100)), declared=(200, 100)), DataLimits(max_pixels=10_000))
    assert isinstance(out, Reject) and out.reason is RejectReason.TOO_MANY_PIXELS
    assert "200x100 = 20,000 pixels, over the limit of 10,000" in out.detail


def test_declared_size_that_differs_from_the_file_is_rejected():
    out = _convert(_record(declared=(48, 64)))
    assert isinstance(out, Reject) and out.reason is RejectReason.SIZE_MISMATCH
    assert "say image 'img1' is 48x64 but" in out.detail


def test_reject_json_round_trip():
    r = Reject("7", "a.json", RejectReason.BAD_BOX, "box 0 ...")
    assert Reject.from_json(r.to_json()) == r
    assert json.loads(r.to_json())["reason"] == "bad_box"
