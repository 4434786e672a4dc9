"""Deterministic synthetic detection data: shapes on textured, noisy backgrounds.

This is detx's own test and demo dataset. Each image is generated from
`numpy.random.default_rng([seed, image_id])`, so the same seed gives the same
bytes, and any image can be regenerated on its own.

Boxes are integer pixel rectangles in half-open form: a box (x0, y0, x1, y1)
covers pixel columns x0..x1-1, and its width is x1 - x0. Every writer stores
exactly these boxes, so COCO, Pascal VOC, YOLO and TFRecord copies of one
dataset hold the same examples and the same boxes (YOLO's to the 6 decimals of
its normalized coordinates).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from detx.components.data import synth_draw
from detx.components.data.ingest_options import FORMATS
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap

# Re-exported: the config's home is synth_config.py (light, for the command line's help).
from detx.components.data.synth_config import CLASSES, SHAPES, SynthConfig

if TYPE_CHECKING:
    import tensorflow as tf

    from detx.components.data.records import SourceRecord

# Deliberately sparse, as COCO's own ids are (1..90 with gaps): the COCO
# ExampleGen must renumber them to contiguous labels 1..3.
COCO_CATEGORY_IDS: tuple[int, ...] = (2, 5, 9, 12)
TFRECORD_FILENAME = "shapes.tfrecord"


@dataclasses.dataclass(frozen=True)
class SynthObject:
    """One drawn shape: its class name and half-open pixel box (x0, y0, x1, y1)."""

    name: str
    box: tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class SynthImage:
    """One generated image with its objects."""

    image_id: int
    jpeg: bytes
    width: int
    height: int
    objects: tuple[SynthObject, ...]

    @property
    def stem(self) -> str:
        """File name without extension."""
        return f"{self.image_id:06d}"

    @property
    def filename(self) -> str:
        """The image's file name."""
        return f"{self.stem}.jpg"


@dataclasses.dataclass(frozen=True)
class SynthSummary:
    """What a written dataset holds."""

    out_dir: str
    format: str
    num_images: int
    num_boxes: int
    num_empty: int
    boxes_per_class: dict[str, int]


def generate_image(config: SynthConfig, image_id: int) -> SynthImage:
    """Draws image `image_id` of the dataset described by `config`."""
    rng = np.random.default_rng([config.seed, image_id])
    w, h = config.width, config.height
    background = synth_draw.background(rng, w, h)
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    weights = np.asarray(config.class_weights, dtype=np.float64)
    n = 0 if rng.random() < config.empty_fraction else int(rng.integers(1, config.max_objects + 1))
    objects: list[SynthObject] = []
    for _ in range(n):
        name = config.classes[int(rng.choice(len(config.classes), p=weights / weights.sum()))]
        for _attempt in range(20):
            bw = int(rng.integers(config.min_size, config.max_size + 1))
            bh = bw if name != "triangle" else int(np.clip(bw * rng.uniform(0.8, 1.2), config.min_size, h))
            x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
            box = (x0, y0, x0 + bw, y0 + bh)
            # Shapes may overlap, but never so much that one is mostly hidden.
            if all(synth_draw.iou(box, o.box) < 0.3 for o in objects):
                break
        else:
            continue
        local = background[y0 : y0 + bh, x0 : x0 + bw].reshape(-1, 3).mean(axis=0)
        candidates = rng.integers(0, 256, size=(8, 3))
        colour = candidates[int(np.argmax(np.linalg.norm(candidates - local, axis=1)))]
        synth_draw.draw_shape(draw, name, box, tuple(int(c) for c in colour), up=bool(rng.integers(2)))
        objects.append(SynthObject(name, box))
    pixels = np.asarray(canvas, dtype=np.float32) * config.brightness
    pixels += rng.standard_normal(size=pixels.shape, dtype=np.float32) * float(rng.uniform(3, 14))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=config.jpeg_quality)
    return SynthImage(image_id, out.getvalue(), w, h, tuple(objects))


def generate(config: SynthConfig) -> Iterator[SynthImage]:
    """Yields the dataset's images in id order."""
    for image_id in range(config.first_id, config.first_id + config.num_images):
        yield generate_image(config, image_id)


def source_record(image: SynthImage) -> SourceRecord:
    """The image as a source record with label ids (circle=1, square=2, triangle=3, cross=4), for `build_example`."""
    from detx.components.data.records import SourceBox, SourceRecord

    boxes = tuple(
        SourceBox(SHAPES.index(o.name) + 1, float(o.box[0]), float(o.box[1]), float(o.box[2]), float(o.box[3]))
        for o in image.objects
    )
    return SourceRecord(
        image.stem, image.filename, boxes, image_bytes=image.jpeg, declared_size=(image.width, image.height)
    )


def label_map(classes: tuple[str, ...] = CLASSES) -> LabelMap:
    """The synthetic dataset's label map (circle=1, square=2, triangle=3, then cross=4 if drawn)."""
    return LabelMap(tuple(c for c in SHAPES if c in classes))


def od_api_example(image: SynthImage) -> tf.train.Example:
    """The OD API tf.Example of a synthetic image, as the OD API's own dataset tools would write it."""
    from detx.components.data.records import DataLimits, Reject, build_example

    lm = label_map(SHAPES)  # label ids follow SHAPES whatever a dataset draws
    converted = build_example(source_record(image), {i: i for i, _ in lm.items()}, lm, DataLimits())
    if isinstance(converted, Reject):  # The generator only draws valid boxes; this would be a bug.
        raise AssertionError(converted.detail)
    example = converted.example
    for key in list(example.features.feature):
        if key.startswith("detx/"):
            del example.features.feature[key]
    return example


def _write_coco(out: str, images: Iterator[SynthImage], classes: tuple[str, ...]) -> Iterator[SynthImage]:
    os.makedirs(os.path.join(out, "images"))
    coco_images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    cat_id = dict(zip(SHAPES, COCO_CATEGORY_IDS, strict=True))
    for img in images:
        with open(os.path.join(out, "images", img.filename), "wb") as f:
            f.write(img.jpeg)
        coco_images.append({"id": img.image_id, "file_name": img.filename, "width": img.width, "height": img.height})
        for o in img.objects:
            x0, y0, x1, y1 = o.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img.image_id,
                    "category_id": cat_id[o.name],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
        yield img
    doc = {
        "info": {"description": "detx synthetic shapes", "version": "1"},
        "images": coco_images,
        "annotations": annotations,
        "categories": [{"id": cat_id[c], "name": c, "supercategory": "shape"} for c in label_map(classes).names],
    }
    with open(os.path.join(out, "annotations.json"), "w") as f:
        json.dump(doc, f, indent=1)


def voc_xml(img: SynthImage) -> bytes:
    """The Pascal VOC annotation of one image (1-based inclusive pixel corners, as the VOC devkit)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = img.filename
    size = ET.SubElement(root, "size")
    for tag, value in (("width", img.width), ("height", img.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for o in img.objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = o.name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        x0, y0, x1, y1 = o.box
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bnd, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _write_voc(out: str, images: Iterator[SynthImage], classes: tuple[str, ...]) -> Iterator[SynthImage]:
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(out, sub))
    stems: list[str] = []
    for img in images:
        with open(os.path.join(out, "JPEGImages", img.filename), "wb") as f:
            f.write(img.jpeg)
        with open(os.path.join(out, "Annotations", f"{img.stem}.xml"), "wb") as f:
            f.write(voc_xml(img))
        stems.append(img.stem)
        yield img
    with open(os.path.join(out, "ImageSets", "Main", "trainval.txt"), "w") as f:
        f.write("".join(f"{s}\n" for s in stems))
    label_map(classes).write(os.path.join(out, LABEL_MAP_FILENAME))


def yolo_label_lines(img: SynthImage, classes: tuple[str, ...]) -> str:
    """The YOLO label file of one image: `class cx cy w h` per box, normalized, 6 decimals as Ultralytics writes."""
    class_id = {name: i for i, name in enumerate(label_map(classes).names)}
    lines = []
    for o in img.objects:
        x0, y0, x1, y1 = o.box
        cx, cy = (x0 + x1) / 2 / img.width, (y0 + y1) / 2 / img.height
        w, h = (x1 - x0) / img.width, (y1 - y0) / img.height
        lines.append(f"{class_id[o.name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _write_yolo(out: str, images: Iterator[SynthImage], classes: tuple[str, ...]) -> Iterator[SynthImage]:
    for sub in ("images", "labels"):
        os.makedirs(os.path.join(out, sub))
    for img in images:
        with open(os.path.join(out, "images", img.filename), "wb") as f:
            f.write(img.jpeg)
        # Empty images get an empty label file, as Roboflow writes them.
        with open(os.path.join(out, "labels", f"{img.stem}.txt"), "w") as f:
            f.write(yolo_label_lines(img, classes))
        yield img
    names = label_map(classes).names
    with open(os.path.join(out, "data.yaml"), "w") as f:
        # Ultralytics' own keys; train/val name the one folder, as a dataset without splits is written.
        f.write(f"path: .\ntrain: images\nval: images\nnc: {len(names)}\nnames: [{', '.join(names)}]\n")


def _write_tfrecord(out: str, images: Iterator[SynthImage], classes: tuple[str, ...]) -> Iterator[SynthImage]:
    # Imported here: TensorFlow costs seconds to import and the other formats do not need it.
    import tensorflow as tf

    os.makedirs(out)
    with tf.io.TFRecordWriter(os.path.join(out, TFRECORD_FILENAME)) as writer:
        for img in images:
            writer.write(od_api_example(img).SerializeToString())
            yield img
    label_map(classes).write(os.path.join(out, LABEL_MAP_FILENAME))


_WRITERS: dict[str, Callable[[str, Iterator[SynthImage], tuple[str, ...]], Iterator[SynthImage]]] = {
    "coco": _write_coco,
    "voc": _write_voc,
    "yolo": _write_yolo,
    "tfrecord": _write_tfrecord,
}


def write_dataset(
    out_dir: str,
    config: SynthConfig,
    fmt: str,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Generates a dataset and writes it to `out_dir` in one of the four formats.

    The dataset is written into a temporary sibling directory and renamed into
    place at the end, so an interrupted run leaves nothing at `out_dir`.

    Args:
        out_dir: where the dataset goes; must not exist or be empty.
        config: what to draw.
        fmt: "coco", "voc", "yolo" or "tfrecord".
        progress: called with the number of images written so far.

    Raises:
        ValueError: unknown format.
        FileExistsError: `out_dir` exists and is not empty.
    """
    if fmt not in _WRITERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new directory or remove it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", dir=parent)
    counts: Counter[str] = Counter()
    num_images = num_empty = 0
    try:
        target = os.path.join(staging, "data")
        for img in _WRITERS[fmt](target, generate(config), config.classes):
            num_images += 1
            num_empty += not img.objects
            counts.update(o.name for o in img.objects)
            if progress is not None:
                progress(num_images)
        if os.path.exists(out_dir):
            os.rmdir(out_dir)
        os.rename(target, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SynthSummary(
        out_dir=out_dir,
        format=fmt,
        num_images=num_images,
        num_boxes=sum(counts.values()),
        num_empty=num_empty,
        boxes_per_class={c: counts[c] for c in label_map(config.classes).names},
    )
