"""Test and benchmark helpers: known faults injected into a synthetic COCO dataset, Examples artifacts, EXIF photos.

Tests and benchmarks break datasets and build examples the same way through
this module (see testing/__init__.py for why it is not installed).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

# Faults that must be quarantined, and the reason each must be reported with.
REJECTED_FAULTS: dict[str, str] = {
    "missing_image": "missing_image",
    "truncated_jpeg": "corrupt_image",
    "not_an_image": "corrupt_image",
    "negative_width": "bad_box",
    "box_outside_image": "box_outside_image",
    "unknown_category": "unknown_category",
    "duplicate_image_id": "duplicate_image_id",
    "too_many_pixels": "too_many_pixels",
    "size_mismatch": "size_mismatch",
}
# Faults that are format differences: converted, not rejected. Values are the conversion reported.
CONVERTED_FAULTS: dict[str, str] = {
    "png_rgba": "png/rgba->rgb",
    "grayscale_jpeg": "jpeg/l->rgb",
    "cmyk_jpeg": "jpeg/cmyk->rgb",
    "png_rgb": "",
}
# The pixel limit under which the "too_many_pixels" fault (a 1600x1200 image) is rejected.
FAULT_MAX_PIXELS = 1_000_000


def _encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def inject_coco_faults(dataset_dir: str, faults: Sequence[str]) -> dict[str, str]:
    """Breaks one image of a synthetic COCO dataset per fault, in place.

    Each fault takes the next image, in id order, that has at least one box
    (so box faults have a box to break).

    Args:
        dataset_dir: a dataset written by `write_dataset(..., "coco")`.
        faults: keys of REJECTED_FAULTS and CONVERTED_FAULTS.

    Returns:
        fault name to the id (as text) of the image it was applied to.
    """
    ann_path = os.path.join(dataset_dir, "annotations.json")
    with open(ann_path) as f:
        doc = json.load(f)
    images = {img["id"]: img for img in doc["images"]}
    anns_by_image: dict[int, list[dict[str, object]]] = {}
    for a in doc["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    candidates = iter(sorted(i for i in images if anns_by_image.get(i)))
    applied: dict[str, str] = {}
    for fault in faults:
        image_id = next(candidates)
        img = images[image_id]
        path = os.path.join(dataset_dir, "images", img["file_name"])
        ann = anns_by_image[image_id][0]
        with open(path, "rb") as f:
            jpeg = f.read()
        pixels = Image.open(io.BytesIO(jpeg))
        if fault == "missing_image":
            os.remove(path)
        elif fault == "truncated_jpeg":
            with open(path, "wb") as f:
                f.write(jpeg[: len(jpeg) // 2])
        elif fault == "not_an_image":
            with open(path, "wb") as f:
                f.write(b"<html>404 Not Found</html>")
        elif fault == "negative_width":
            bbox = list(ann["bbox"])  # type: ignore[call-overload]
            ann["bbox"] = [bbox[0], bbox[1], -10, bbox[3]]
        elif fault == "box_outside_image":
            ann["bbox"] = [img["width"] - 5, 10, 60, 40]
        elif fault == "unknown_category":
            ann["category_id"] = 999
        elif fault == "duplicate_image_id":
            doc["images"].append(dict(img, file_name=img["file_name"]))
        elif fault == "too_many_pixels":
            with open(path, "wb") as f:
                f.write(_encode(pixels.resize((1600, 1200)), "JPEG"))
            img["width"], img["height"] = 1600, 1200
            for a in anns_by_image[image_id]:
                a["bbox"] = [v * 2.5 for v in a["bbox"]]  # type: ignore[attr-defined]
        elif fault == "size_mismatch":
            img["width"], img["height"] = img["height"], img["width"]
        elif fault in ("png_rgba", "png_rgb"):
            os.remove(path)
            img["file_name"] = img["file_name"].rsplit(".", 1)[0] + ".png"
            rgba = pixels.convert("RGBA")
            if fault == "png_rgba":
                alpha = np.full((pixels.height, pixels.width), 255, dtype=np.uint8)
                alpha[:, : pixels.width // 4] = 0
                rgba.putalpha(Image.fromarray(alpha))
            data = _encode(rgba if fault == "png_rgba" else pixels, "PNG")
            with open(os.path.join(dataset_dir, "images", img["file_name"]), "wb") as f:
                f.write(data)
        elif fault == "grayscale_jpeg":
            with open(path, "wb") as f:
                f.write(_encode(pixels.convert("L"), "JPEG"))
        elif fault == "cmyk_jpeg":
            with open(path, "wb") as f:
                f.write(_encode(pixels.convert("CMYK"), "JPEG"))
        else:
            raise ValueError(f"unknown fault {fault!r}")
        applied[fault] = str(image_id)
    with open(ann_path, "w") as f:
        json.dump(doc, f)
    return applied


def add_crowded_tfrecord(dataset_dir: str, num_boxes: int = 101, image_id: str = "crowded") -> None:
    """Adds `crowded.tfrecord` to a TFRecord dataset: one valid image holding `num_boxes` boxes.

    Every record is individually valid, so the ExampleGen accepts it; the
    schema's limit of 100 boxes per image (the Model Zoo SSD's
    max_number_of_boxes) is what must stop it, at the data gate.
    """
    import tensorflow as tf

    from detx.components.data.label_map import LabelMap
    from detx.components.data.records import Converted, DataLimits, SourceBox, SourceRecord, build_example

    side = int(np.ceil(np.sqrt(num_boxes)))
    cell = 640 // side
    boxes = tuple(
        SourceBox(
            1 + i % 3,
            (i % side) * cell,
            (i // side) * cell * 0.75,
            (i % side) * cell + cell - 2,
            (i // side) * cell * 0.75 + cell * 0.75 - 2,
        )
        for i in range(num_boxes)
    )
    arr = np.full((480, 640, 3), 120, dtype=np.uint8)
    record = SourceRecord(image_id, f"{image_id}.jpg", boxes, image_bytes=_encode(Image.fromarray(arr), "JPEG"))
    lm = LabelMap(("circle", "square", "triangle"))
    converted = build_example(record, {1: 1, 2: 2, 3: 3}, lm, DataLimits())
    assert isinstance(converted, Converted), converted
    with tf.io.TFRecordWriter(os.path.join(dataset_dir, "crowded.tfrecord")) as writer:
        writer.write(converted.example.SerializeToString())


def write_examples(
    out_dir: str, num_images: int, seed: int = 0, splits: dict[str, int] | None = None, **synth: object
) -> str:
    """Writes synthetic OD API tf.Examples in the ExampleGen's artifact layout, without running a pipeline.

    `out_dir/Split-<name>/data_tfrecord-00000-of-00001.gz` per split, plus
    `label_map.pbtxt`: what trainer tests need, in a fraction of a pipeline's time.

    Args:
        out_dir: the folder to create.
        num_images: images in all.
        seed: synthetic dataset seed.
        splits: split name to number of images, in order; default 80% train, the rest eval.
        **synth: further SynthConfig fields (e.g. min_size=48).

    Returns:
        out_dir.
    """
    import tensorflow as tf

    from detx.components.data.label_map import LABEL_MAP_FILENAME
    from detx.components.data.records import Converted, DataLimits, build_example
    from detx.components.data.synth import SynthConfig, generate, label_map, source_record

    config = SynthConfig(num_images=num_images, seed=seed, **synth)  # type: ignore[arg-type]
    train = int(num_images * 0.8)
    sizes = splits or {"train": train, "eval": num_images - train}
    lm = label_map()
    images = generate(config)
    for name, count in sizes.items():
        split_dir = os.path.join(out_dir, f"Split-{name}")
        os.makedirs(split_dir)
        path = os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for _ in range(count):
                converted = build_example(source_record(next(images)), {i: i for i, _ in lm.items()}, lm, DataLimits())
                assert isinstance(converted, Converted), converted
                writer.write(converted.example.SerializeToString())
    lm.write(os.path.join(out_dir, LABEL_MAP_FILENAME))
    return out_dir


# A scene for EXIF orientation tests: 120x80 as displayed, grey, with one red block off centre, so that
# any wrong turn or mirror moves the block's box far from where it belongs.
PHOTO_SIZE = (120, 80)
PHOTO_BOX = (12, 8, 42, 30)  # xmin, ymin, xmax, ymax in pixels of the displayed frame
# Orientation -> the transpose that turns upright pixels into what a camera stores with that tag
# (the inverse of what viewers apply; 2-5 and 7 are their own inverses).
_TO_STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def photo_scene(size: tuple[int, int] = PHOTO_SIZE, box: tuple[int, int, int, int] = PHOTO_BOX) -> np.ndarray:
    """uint8 [height, width, 3]: grey, with a pure red block at `box` (xmin, ymin, xmax, ymax; max exclusive)."""
    pixels = np.full((size[1], size[0], 3), 128, dtype=np.uint8)
    pixels[box[1] : box[3], box[0] : box[2]] = (255, 0, 0)
    return pixels


def exif_photo(displayed: np.ndarray, orientation: int, fmt: str = "JPEG") -> bytes:
    """Encodes pixels the way a phone stores them: turned, with an EXIF orientation that a viewer undoes.

    A viewer that obeys the tag (Pillow's `ImageOps.exif_transpose`, a browser)
    shows `displayed`; TensorFlow's decoders, which ignore it, see the stored
    pixels. Orientation 1 writes the tag too (upright, as many cameras do).

    Args:
        displayed: uint8 [height, width, 3], as the photo should look.
        orientation: EXIF orientation, 1-8.
        fmt: "JPEG" (quality 95) or "PNG" (lossless, eXIf chunk).
    """
    image = Image.fromarray(displayed)
    if orientation != 1:
        image = image.transpose(_TO_STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def red_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(xmin, ymin, xmax, ymax; max exclusive) of the clearly red pixels of [height, width, 3] RGB, or None.

    A detector whose answer depends on orientation and nothing else, for tests
    of the prediction paths.
    """
    rgb = np.asarray(pixels, dtype=np.int32)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    if not red.any():
        return None
    ys, xs = np.nonzero(red)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
