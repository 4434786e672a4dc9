"""EXIF orientation at ingestion: phone photos stored upright when their boxes are in the displayed frame.

Every photo is `testing.photo_scene` (a red block off centre) stored as a phone
stores it (`testing.exif_photo`); the stored example is read back with
TensorFlow's decoder, which ignores EXIF as training does, and the red block
must be where the example's box says.
"""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from detx.components.data import features as F
from detx.components.data.images import EXIF_ORIENTATION
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
from detx.components.example_gen.report import IngestSummary
from testing.data import PHOTO_BOX, PHOTO_SIZE, exif_photo, photo_scene, red_box

LM = LabelMap(("block",))
ORIENTATIONS = range(1, 9)


def _convert(data, box, declared, normalized=False):
    record = SourceRecord(
        "phone1",
        "phone1.jpg",
        (SourceBox(1, *box),),
        image_bytes=data,
        declared_size=declared,
        normalized_boxes=normalized,
        annotation_file="instances.json",
    )
    return build_example(record, {1: 1}, LM, DataLimits())


def _stored(example):
    """(pixels as TensorFlow decodes them, (width, height) features, box in pixels from the features)."""
    feature = example.features.feature
    pixels = tf.io.decode_image(feature[F.ENCODED].bytes_list.value[0], channels=3).numpy()
    width, height = feature[F.WIDTH].int64_list.value[0], feature[F.HEIGHT].int64_list.value[0]
    box = tuple(
        round(feature[key].float_list.value[0] * scale)
        for key, scale in ((F.XMIN, width), (F.YMIN, height), (F.XMAX, width), (F.YMAX, height))
    )
    return pixels, (width, height), box


def _stored_frame(orientation, fmt="JPEG"):
    """(the photo's stored (width, height), the red block's box in the stored pixels)."""
    pixels = np.asarray(Image.open(io.BytesIO(exif_photo(photo_scene(), orientation, fmt))).convert("RGB"))
    return (pixels.shape[1], pixels.shape[0]), red_box(pixels)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_boxes_in_the_displayed_frame_turn_the_pixels_upright_and_are_counted(orientation, fmt):
    data = exif_photo(photo_scene(), orientation, fmt)
    out = _convert(data, PHOTO_BOX, PHOTO_SIZE)
    assert isinstance(out, Converted), out
    pixels, size, box = _stored(out.example)
    assert size == PHOTO_SIZE and pixels.shape == (PHOTO_SIZE[1], PHOTO_SIZE[0], 3)
    assert box == PHOTO_BOX and red_box(pixels) == PHOTO_BOX  # the block is under its box
    encoded = out.example.features.feature[F.ENCODED].bytes_list.value[0]
    if orientation == 1:
        assert out.conversion is None and encoded == data  # upright already: bytes kept
    else:
        assert out.conversion == f"exif/{orientation}->upright"
        assert EXIF_ORIENTATION not in Image.open(io.BytesIO(encoded)).getexif()  # no reader turns it twice
        assert out.example.features.feature[F.FORMAT].bytes_list.value[0] == fmt.lower().encode()


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_boxes_in_the_stored_frame_leave_the_pixels_alone_and_the_tag_says_upright(orientation):
    data = exif_photo(photo_scene(), orientation)
    stored_size, stored_box = _stored_frame(orientation)
    assert stored_size == (PHOTO_SIZE[1], PHOTO_SIZE[0]) and stored_box != PHOTO_BOX
    out = _convert(data, stored_box, stored_size)
    assert isinstance(out, Converted) and out.conversion is None
    encoded = out.example.features.feature[F.ENCODED].bytes_list.value[0]
    # Byte for byte but the orientation value: no reader (the exported graph included) turns it.
    assert len(encoded) == len(data) and sum(a != b for a, b in zip(encoded, data, strict=True)) == 1
    with Image.open(io.BytesIO(encoded)) as image:
        assert image.getexif().get(0x0112) == 1
    pixels, size, box = _stored(out.example)
    assert size == stored_size and box == stored_box and red_box(pixels) == stored_box


@pytest.mark.parametrize("orientation", [2, 3, 4])
def test_turns_that_keep_the_size_assume_the_displayed_frame_as_labelling_tools_show_it(orientation):
    out = _convert(exif_photo(photo_scene(), orientation), PHOTO_BOX, PHOTO_SIZE)
    assert isinstance(out, Converted) and out.conversion == f"exif/{orientation}->upright"
    assert red_box(_stored(out.example)[0]) == PHOTO_BOX


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_a_size_that_fits_neither_frame_is_quarantined_naming_both(orientation):
    data = exif_photo(photo_scene(), orientation)
    out = _convert(data, PHOTO_BOX, (100, 90))
    assert isinstance(out, Reject) and out.reason is RejectReason.SIZE_MISMATCH
    assert out.file == "instances.json"  # the file the bytes came from (embedded here, as in TFRecords)
    if orientation == 1:
        assert out.detail.startswith("the annotations say image 'phone1' is 100x90 but instances.json is 120x80;")
    else:
        stored = "80x120" if orientation >= 5 else "120x80"
        assert (
            f"is 100x90 but instances.json is {stored} as stored and 120x80 as displayed "
            f"(EXIF orientation {orientation}); the boxes fit neither" in out.detail
        )


def test_a_rotated_photo_with_unrotated_boxes_never_passes_silently():
    # Boxes drawn on the stored (sideways) pixels but declared with the displayed size: the
    # photo is turned to the declared frame, so the boxes are either outside it (quarantined)
    # or inside it and the turn is counted as a conversion (the summary says how many).
    stored_box = _stored_frame(6)[1]  # (8, 78, 30, 108): below the 80-pixel-high displayed frame
    out = _convert(exif_photo(photo_scene(), 6), stored_box, PHOTO_SIZE)
    assert isinstance(out, Reject) and out.reason is RejectReason.BOX_OUTSIDE_IMAGE
    assert "extends outside the 120x80 image" in out.detail
    out = _convert(exif_photo(photo_scene(), 6), (8, 8, 30, 38), PHOTO_SIZE)
    assert isinstance(out, Converted) and out.conversion == "exif/6->upright"


def test_without_a_declared_size_the_displayed_frame_is_assumed_for_pixel_and_normalized_boxes():
    data = exif_photo(photo_scene(), 6)
    out = _convert(data, PHOTO_BOX, None)
    assert isinstance(out, Converted) and out.conversion == "exif/6->upright"
    assert _stored(out.example)[2] == PHOTO_BOX
    w, h = PHOTO_SIZE
    normalized = (PHOTO_BOX[0] / w, PHOTO_BOX[1] / h, PHOTO_BOX[2] / w, PHOTO_BOX[3] / h)
    out = _convert(data, normalized, None, normalized=True)
    assert isinstance(out, Converted) and _stored(out.example)[2] == PHOTO_BOX


def test_a_cmyk_phone_photo_notes_both_conversions():
    stored = Image.open(io.BytesIO(exif_photo(photo_scene(), 8))).convert("CMYK")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 8
    out_bytes = io.BytesIO()
    stored.save(out_bytes, format="JPEG", quality=95, exif=exif.tobytes())
    out = _convert(out_bytes.getvalue(), PHOTO_BOX, PHOTO_SIZE)
    assert isinstance(out, Converted) and out.conversion == "jpeg/cmyk->rgb+exif/8->upright"
    assert red_box(_stored(out.example)[0]) == PHOTO_BOX


def test_an_orientation_outside_one_to_eight_is_ignored_as_viewers_ignore_it():
    image = Image.fromarray(photo_scene())
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 9
    data = io.BytesIO()
    image.save(data, format="JPEG", exif=exif.tobytes())
    out = _convert(data.getvalue(), PHOTO_BOX, PHOTO_SIZE)
    assert isinstance(out, Converted) and out.conversion is None


def test_the_summary_counts_turns_per_orientation_apart_from_rgb_conversions():
    notes = {
        "examples": 7,
        "boxes": 7,
        "converted:exif/6->upright": 3,
        "converted:jpeg/cmyk->rgb+exif/8->upright": 1,
        "converted:png/rgba->rgb": 2,
    }
    summary = IngestSummary.build(
        data_format="coco",
        input_base="/data",
        num_records=7,
        rejects=[],
        notes=notes,
        category_ids={"1": 1},
        max_rejected_fraction=0.1,
    )
    assert summary.conversions == {"jpeg/cmyk->rgb": 1, "png/rgba->rgb": 2}
    assert summary.exif_rotated == {"6": 3, "8": 1}
    assert "3 images converted to RGB; 4 photos turned upright from their EXIF orientation; 0 boxes" in (
        summary.one_line()
    )
    assert IngestSummary.from_json(summary.to_json()) == summary
    old = json.loads(summary.to_json())
    del old["exif_rotated"]  # a summary written before detx counted turns
    assert IngestSummary.from_json(json.dumps(old)).exif_rotated == {}
    no_turns = IngestSummary.build(**{**_args(summary), "notes": {"examples": 1, "boxes": 0}})
    assert "upright" not in no_turns.one_line()


def _args(summary):
    return {
        "data_format": summary.data_format,
        "input_base": summary.input_base,
        "num_records": 1,
        "rejects": [],
        "category_ids": {},
        "max_rejected_fraction": 0.1,
    }
