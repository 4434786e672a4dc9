"""One labelled image in, one tf.Example or one quarantine record out.

Every source format (COCO, Pascal VOC, OD API TFRecords) is read into
`SourceRecord`s; `build_example` is the single place that checks an image and
its boxes and writes the Object Detection API tf.Example. A record that cannot
be converted correctly becomes a `Reject` naming the file and the reason, which
the ExampleGen writes to its quarantine report. Nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Mapping, Sequence

import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.images import (
    CorruptImage,
    ImageHeader,
    TooManyPixels,
    normalize_image,
    read_header,
    with_upright_tag,
)
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.label_map import LabelMap


class RejectReason(enum.StrEnum):
    """Why a record went to quarantine; the value is what reports and summaries show."""

    MISSING_IMAGE = "missing_image"
    CORRUPT_IMAGE = "corrupt_image"
    TOO_MANY_PIXELS = "too_many_pixels"
    SIZE_MISMATCH = "size_mismatch"
    BAD_BOX = "bad_box"
    BOX_OUTSIDE_IMAGE = "box_outside_image"
    UNKNOWN_CATEGORY = "unknown_category"
    DUPLICATE_IMAGE_ID = "duplicate_image_id"
    DUPLICATE_IMAGE_FILE = "duplicate_image_file"
    BAD_ANNOTATION = "bad_annotation"


@dataclasses.dataclass(frozen=True)
class Reject:
    """A record that was not converted, with enough detail to find and fix it.

    Attributes:
        image_id: the image id in the source (COCO id, VOC file stem, source_id).
        file: the file the problem is in (image or annotation file).
        reason: the category of problem.
        detail: a sentence naming the problem and, where there is one, the fix.
    """

    image_id: str
    file: str
    reason: RejectReason
    detail: str

    def to_json(self) -> str:
        """One line of the quarantine report (JSON Lines)."""
        return json.dumps(
            {"image_id": self.image_id, "file": self.file, "reason": self.reason.value, "detail": self.detail},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, line: str) -> Reject:
        """Parses one quarantine report line."""
        d = json.loads(line)
        return cls(d["image_id"], d["file"], RejectReason(d["reason"]), d["detail"])


@dataclasses.dataclass(frozen=True)
class SourceBox:
    """One labelled object as the source gives it.

    Attributes:
        category: the source's class key: a COCO category id, a VOC class name,
            or an OD API label id.
        xmin, ymin, xmax, ymax: corners in pixels, or in [0, 1] when the owning
            record has `normalized_boxes`.
        is_crowd: COCO's iscrowd flag.
        text: the class name the source wrote next to the box, if any (OD API
            TFRecords carry both label and text; they must agree).
    """

    category: int | str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    is_crowd: bool = False
    text: str | None = None


@dataclasses.dataclass(frozen=True)
class SourceRecord:
    """A labelled image as read from a source, before any checks.

    Exactly one of `image_path` and `image_bytes` is set.

    Attributes:
        image_id: unique id of the image within the dataset; becomes `image/source_id`.
        filename: the image's file name; becomes `image/filename`.
        boxes: the labelled objects.
        image_path: where to read the image from.
        image_bytes: the encoded image, for sources that embed it (TFRecords).
        declared_size: (width, height) the annotation claims, checked against the file; for a photo
            with an EXIF orientation it also says which frame the boxes are in (`build_example`).
        normalized_boxes: True when box coordinates are fractions of the image size.
        annotation_file: the file the labels came from, for reports.
    """

    image_id: str
    filename: str
    boxes: tuple[SourceBox, ...]
    image_path: str | None = None
    image_bytes: bytes | None = None
    declared_size: tuple[int, int] | None = None
    normalized_boxes: bool = False
    annotation_file: str = ""


@dataclasses.dataclass(frozen=True)
class DataLimits:
    """What the ExampleGen accepts.

    Attributes:
        max_pixels: images with more pixels are rejected (decompression bombs,
            scans at print resolution); 40 MP admits any camera photo.
        clip_tolerance_px: a box may stick out of the image by this many pixels
            and is clipped; COCO's own boxes overshoot by fractions of a pixel
            from rounding. Beyond it the record is rejected.
        jpeg_quality: quality used when an image must be re-encoded (CMYK or
            grayscale JPEG to RGB).
    """

    # The defaults are ingestion's (one home: IngestOptions, which the pipeline's config reads too).
    max_pixels: int = IngestOptions.max_pixels
    clip_tolerance_px: float = IngestOptions.clip_tolerance_px
    jpeg_quality: int = 95


@dataclasses.dataclass(frozen=True)
class Converted:
    """A record converted into a tf.Example.

    Attributes:
        example: the tf.Example in the OD API layout.
        conversion: what was done to the image to make it upright RGB JPEG/PNG
            (e.g. "jpeg/cmyk->rgb", "exif/6->upright", or both joined by "+";
            see `images.normalize_image`), or None if the bytes were kept as they were.
        num_clipped: boxes clipped to the image within the tolerance.
    """

    example: tf.train.Example
    conversion: str | None
    num_clipped: int


class _RecordError(Exception):
    """Internal: carries a rejection out of the checking helpers."""

    def __init__(self, reason: RejectReason, file: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.file, self.detail = reason, file, detail


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _floats(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _ints(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _read_image_bytes(record: SourceRecord) -> tuple[bytes, str]:
    if record.image_bytes is not None:
        return record.image_bytes, record.annotation_file or record.filename
    assert record.image_path is not None
    path = record.image_path
    if not tf.io.gfile.exists(path):
        raise _RecordError(
            RejectReason.MISSING_IMAGE,
            path,
            f"image file {path} does not exist; restore it or remove image {record.image_id!r} from the annotations",
        )
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read(), path


def _header(data: bytes, file: str, limits: DataLimits) -> ImageHeader:
    """`images.read_header` under the record's limits, its refusals as quarantine reasons."""
    try:
        return read_header(data, file, limits.max_pixels)
    except TooManyPixels as e:
        raise _RecordError(RejectReason.TOO_MANY_PIXELS, file, str(e)) from e
    except CorruptImage as e:
        raise _RecordError(RejectReason.CORRUPT_IMAGE, file, str(e)) from e


def _boxes_in_displayed_frame(record: SourceRecord, header: ImageHeader, file: str) -> bool:
    """Whether the record's boxes are in the displayed frame of an EXIF-oriented photo (else the stored one).

    Labelling tools show photos as displayed, so a declared size that matches
    the displayed frame means the pixels must be turned to match the boxes; one
    that matches the stored frame means the boxes were drawn on the pixels as
    stored (e.g. OD API TFRecords, whose decoders ignore EXIF). Where both match
    (orientations 2-4, which keep the size, or a square photo) or no size is
    declared, the displayed frame is assumed, as every labelling tool shows it,
    and the turn is counted in the ingestion summary.

    Raises:
        _RecordError: SIZE_MISMATCH when the declared size fits neither frame.
    """
    declared = record.declared_size
    stored, shown = (header.width, header.height), header.displayed_size
    if header.orientation == 1:
        if declared is not None and declared != stored:
            raise _RecordError(
                RejectReason.SIZE_MISMATCH,
                file,
                f"the annotations say image {record.image_id!r} is {declared[0]}x{declared[1]} but {file} is "
                f"{stored[0]}x{stored[1]}; the boxes cannot be trusted (was the image resized or rotated after "
                "labelling?)",
            )
        return False
    if declared is None or declared == shown:
        return True
    if declared == stored:
        return False
    raise _RecordError(
        RejectReason.SIZE_MISMATCH,
        file,
        f"the annotations say image {record.image_id!r} is {declared[0]}x{declared[1]} but {file} is "
        f"{stored[0]}x{stored[1]} as stored and {shown[0]}x{shown[1]} as displayed (EXIF orientation "
        f"{header.orientation}); the boxes fit neither, so they cannot be trusted (was the image resized after "
        "labelling?)",
    )


def _normalize(
    data: bytes, file: str, limits: DataLimits, make_upright: bool
) -> tuple[bytes, str, int, int, float, str | None]:
    """`images.normalize_image` under the record's limits, its refusals as quarantine reasons."""
    try:
        return normalize_image(data, file, limits.max_pixels, limits.jpeg_quality, make_upright)
    except TooManyPixels as e:
        raise _RecordError(RejectReason.TOO_MANY_PIXELS, file, str(e)) from e
    except CorruptImage as e:
        raise _RecordError(RejectReason.CORRUPT_IMAGE, file, str(e)) from e


def _check_boxes(
    record: SourceRecord,
    width: int,
    height: int,
    resolve: Mapping[int | str, int],
    label_map: LabelMap,
    limits: DataLimits,
) -> tuple[list[tuple[float, float, float, float]], list[int], int]:
    """Validates and normalizes the record's boxes.

    Returns:
        (normalized [xmin, ymin, xmax, ymax] per box, labels, number clipped)
    """
    where = record.annotation_file or record.filename
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    clipped = 0
    for i, b in enumerate(record.boxes):
        label = resolve.get(b.category)
        if label is None:
            raise _RecordError(
                RejectReason.UNKNOWN_CATEGORY,
                where,
                f"object {i} of image {record.image_id!r} has category {b.category!r}, which is not in the "
                f"label map ({', '.join(label_map.names)}); add the category or fix the annotation",
            )
        if b.text is not None and b.text != label_map.name_of(label):
            raise _RecordError(
                RejectReason.UNKNOWN_CATEGORY,
                where,
                f"object {i} of image {record.image_id!r} has label {label} with text {b.text!r}, but the "
                f"label map names label {label} {label_map.name_of(label)!r}",
            )
        sx, sy = (width, height) if record.normalized_boxes else (1.0, 1.0)
        x0, y0, x1, y1 = b.xmin * sx, b.ymin * sy, b.xmax * sx, b.ymax * sy
        desc = f"box {i} of image {record.image_id!r} [xmin={x0:g}, ymin={y0:g}, xmax={x1:g}, ymax={y1:g}] px"
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise _RecordError(RejectReason.BAD_BOX, where, f"{desc} has a coordinate that is not a finite number")
        if x1 <= x0 or y1 <= y0:
            raise _RecordError(
                RejectReason.BAD_BOX,
                where,
                f"{desc} has width {x1 - x0:g} and height {y1 - y0:g}; both must be positive",
            )
        tol = limits.clip_tolerance_px
        if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
            raise _RecordError(
                RejectReason.BOX_OUTSIDE_IMAGE,
                where,
                f"{desc} extends outside the {width}x{height} image by more than {tol:g} px",
            )
        cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            clipped += 1
        if cx1 <= cx0 or cy1 <= cy0:
            raise _RecordError(RejectReason.BOX_OUTSIDE_IMAGE, where, f"{desc} lies outside the image")
        boxes.append((cx0 / width, cy0 / height, cx1 / width, cy1 / height))
        labels.append(label)
    return boxes, labels, clipped


def build_example(
    record: SourceRecord,
    resolve: Mapping[int | str, int],
    label_map: LabelMap,
    limits: DataLimits,
) -> Converted | Reject:
    """Checks one record and converts it into an OD API tf.Example.

    Args:
        record: the labelled image.
        resolve: maps each source category key to a 1-based label id.
        label_map: the dataset's label map (for names and messages).
        limits: what is accepted.

    Returns:
        The converted example, or a Reject saying what is wrong. A photo with
        an EXIF orientation is stored upright when its boxes are in the
        displayed frame (`_boxes_in_displayed_frame`); its width, height and
        boxes are then those of the upright image.
    """
    try:
        data, file = _read_image_bytes(record)
        # The header first: whether to turn the pixels depends on the frame the boxes were drawn in.
        header = _header(data, file, limits)
        make_upright = _boxes_in_displayed_frame(record, header, file)
        encoded, fmt, width, height, brightness, conversion = _normalize(data, file, limits, make_upright)
        if header.orientation != 1 and not make_upright:
            # The boxes are on the pixels as stored: the tag must not turn them for any reader
            # (the exported graph obeys it), so it now says upright, the pixels untouched.
            encoded = with_upright_tag(encoded)
        boxes, labels, clipped = _check_boxes(record, width, height, resolve, label_map, limits)
    except _RecordError as e:
        return Reject(record.image_id, e.file, e.reason, e.detail)

    xmin = [b[0] for b in boxes]
    ymin = [b[1] for b in boxes]
    xmax = [b[2] for b in boxes]
    ymax = [b[3] for b in boxes]
    box_w = [b[2] - b[0] for b in boxes]
    box_h = [b[3] - b[1] for b in boxes]
    feature = {
        F.ENCODED: _bytes([encoded]),
        F.FORMAT: _bytes([fmt.encode()]),
        F.HEIGHT: _ints([height]),
        F.WIDTH: _ints([width]),
        F.FILENAME: _bytes([os.path.basename(record.filename).encode()]),
        F.SOURCE_ID: _bytes([record.image_id.encode()]),
        F.XMIN: _floats(xmin),
        F.XMAX: _floats(xmax),
        F.YMIN: _floats(ymin),
        F.YMAX: _floats(ymax),
        F.LABEL: _ints(labels),
        F.TEXT: _bytes([label_map.name_of(lab).encode() for lab in labels]),
        F.IS_CROWD: _ints([int(b.is_crowd) for b in record.boxes]),
        F.NUM_OBJECTS: _ints([len(boxes)]),
        F.BOX_WIDTH: _floats(box_w),
        F.BOX_HEIGHT: _floats(box_h),
        F.BOX_AREA: _floats([w * h for w, h in zip(box_w, box_h, strict=True)]),
        # Aspect in pixels (not normalized units), so a square is 1.0 on any image shape.
        F.BOX_ASPECT: _floats([(w * width) / (h * height) for w, h in zip(box_w, box_h, strict=True)]),
        F.BRIGHTNESS: _floats([brightness]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return Converted(example, conversion, clipped)
