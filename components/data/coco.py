"""Reads a COCO detection dataset: one instances JSON file and a folder of images.

Exports of CVAT, Label Studio, Roboflow and FiftyOne are read as they are
written, with no flags:

- `file_name` is resolved against the image folder, the annotation file's
  folder, or its `images/` or `data/` subfolder, whichever holds the files
  (`scan.choose_layout`); the scan's notes say which.
- Category ids may start at 0 or be sparse: they become labels 1..N in id
  order (0 is the background in the Object Detection API).
- A category that no annotation uses and that other categories name as their
  `supercategory` (Roboflow's dataset-wide umbrella class) is left out of the
  label map, and the notes say so.
- `segmentation`, `area`, `attributes` and any other keys are ignored.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from detx.components.data.label_map import LabelMap
from detx.components.data.records import Reject, RejectReason, SourceBox, SourceRecord
from detx.components.data.scan import DatasetError, Scan, choose_layout, split_duplicate_files, split_duplicates

# `type(v) in _NUMBER` rather than isinstance: it is faster over a million
# boxes, and it refuses JSON `true`/`false` (bool is an int subclass).
_NUMBER = frozenset((int, float))


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pauses Python's cycle collector while a large annotation file becomes objects.

    Parsing and indexing create millions of dicts, lists and boxes, none of
    them in a reference cycle; the collector would still traverse all of them
    again and again as they accumulate (a train2017-size file parses in about
    half the time without it). Reference counting still frees everything.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read(path: str) -> bytes:
    if "://" not in path:  # a local file: Python's own read is three times faster than GFile's for 400 MB
        with open(path, "rb") as f:
            return f.read()
    with tf.io.gfile.GFile(path, "rb") as f:
        return bytes(f.read())


def _load_json(path: str) -> dict[str, Any]:
    if not tf.io.gfile.exists(path):
        raise DatasetError(f"COCO annotation file {path} does not exist")
    raw = _read(path)
    if not raw or raw.isspace():  # not raw.strip(): that would copy a file of hundreds of MB
        raise DatasetError(
            f"COCO annotation file {path} is empty; expected a JSON object with 'images', 'annotations' "
            "and 'categories'"
        )
    try:
        text = raw.decode("utf-8-sig")  # some Windows tools write a byte-order mark
    except UnicodeDecodeError as e:
        raise DatasetError(f"COCO annotation file {path} is not valid JSON: {e}") from e
    # The bytes go before parsing: with them, the text and the parsed document
    # alive at once, the peak would be one file size higher than it needs to be.
    del raw
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"COCO annotation file {path} is not valid JSON: {e}") from e
    del text
    if not isinstance(doc, dict):
        raise DatasetError(f"COCO annotation file {path} must hold a JSON object, not {type(doc).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DatasetError(
                f"COCO annotation file {path} has no {key!r} list; a detection dataset needs 'images', "
                "'annotations' and 'categories' (an image-info file for a test split cannot be trained on)"
            )
    if not doc["images"]:
        raise DatasetError(f"COCO annotation file {path} lists no images")
    return doc


def _categories(doc: dict[str, Any], path: str) -> dict[int, str]:
    categories: dict[int, str] = {}
    for c in doc["categories"]:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise DatasetError(f"{path}: category {c!r} needs an integer 'id' and a string 'name'")
        if c["id"] in categories:
            raise DatasetError(f"{path}: category id {c['id']} is defined twice")
        categories[c["id"]] = c["name"]
    if not categories:
        raise DatasetError(f"{path}: 'categories' is empty; list the classes the boxes use")
    return categories


def _umbrellas(doc: dict[str, Any], categories: dict[int, str], used: set[Any]) -> dict[int, str]:
    """Categories that only group others: unused, and named as another category's `supercategory`.

    Roboflow writes one such category (id 0, named after the project) above
    all the real classes. Trained as a class it would be a label with no
    examples, which the detector learns to never predict and the evaluator
    averages in as zero.
    """
    parents = {c.get("supercategory") for c in doc["categories"] if c.get("supercategory") not in (None, "", c["name"])}
    found = {cid: name for cid, name in categories.items() if name in parents and cid not in used}
    return found if len(found) < len(categories) else {}


def _box(ann: dict[str, Any]) -> SourceBox | None:
    bbox = ann.get("bbox")
    if type(bbox) is not list or len(bbox) != 4:
        return None
    x, y, w, h = bbox
    if not (type(x) in _NUMBER and type(y) in _NUMBER and type(w) in _NUMBER and type(h) in _NUMBER):
        return None
    crowd = bool(ann.get("iscrowd"))
    return SourceBox(ann.get("category_id", -1), float(x), float(y), float(x + w), float(y + h), crowd)


def _file_name(name: str) -> str:
    # Exports made on Windows may separate folders with backslashes.
    return name.replace("\\", "/") if "\\" in name else name


def _image_root(annotation_file: str, image_dir: str, file_names: list[str]) -> tuple[str, str]:
    """The folder `file_name`s are relative to, and a note saying which and why."""
    here = os.path.dirname(annotation_file)
    candidates: dict[str, str] = {}
    for root, what in (
        (image_dir, "the image folder"),
        (here, "the annotation file's folder"),  # Label Studio: images/x.jpg; Roboflow: x.jpg beside it
        (os.path.join(here, "images"), "the images/ folder beside the annotation file"),
        (os.path.join(here, "data"), "the data/ folder beside the annotation file"),  # FiftyOne
    ):
        candidates.setdefault(os.path.normpath(root), what)
    roots = list(candidates)
    index, found, sampled = choose_layout([functools.partial(os.path.join, r) for r in roots], file_names)
    if found <= 0:
        return image_dir, (
            f"none of {sampled} sampled images was found under {', '.join(roots)}; they are reported missing "
            f"under {image_dir} (set --image-dir to the folder the file names are relative to)"
        )
    root = roots[index]
    return root, f"image file names are relative to {root} ({candidates[root]}): {found} of {sampled} sampled found"


def scan_coco(annotation_file: str, image_dir: str) -> Scan:
    """Reads a COCO instances file into records.

    Category ids may be sparse or start at 0 (COCO's are 1..90 with gaps; Label
    Studio's start at 0); they become contiguous labels 1..N in id order.
    Image ids become `image/source_id`.

    Memory: the parsed document is the largest thing alive. Annotations are
    taken off its list as they are turned into boxes, so their dicts (and
    their `segmentation` polygons) are freed while the boxes are built.

    Args:
        annotation_file: the instances JSON.
        image_dir: the folder `file_name`s are relative to by convention; the
            annotation file's folder is used instead when it holds the files.

    Raises:
        DatasetError: the file is missing, empty, not COCO, or has no images.
    """
    with _without_cyclic_gc():
        return _scan(annotation_file, image_dir)


def _scan(annotation_file: str, image_dir: str) -> Scan:
    doc = _load_json(annotation_file)
    categories = _categories(doc, annotation_file)
    anns: list[Any] = doc.pop("annotations")
    used_categories: set[Any] = set()
    boxes_by_image: defaultdict[Any, list[SourceBox | None]] = defaultdict(list)
    bad_box_images: set[Any] = set()
    anns.reverse()  # popped from the end, in file order
    while anns:
        ann = anns.pop()
        if type(ann) is not dict:
            boxes_by_image[None].append(None)
            continue
        key = ann.get("image_id")
        if type(key) is not int and type(key) is not str:  # a list or dict id would not be hashable
            key = repr(key)
        box = _box(ann)
        boxes_by_image[key].append(box)
        if box is None:
            bad_box_images.add(key)
        else:
            used_categories.add(box.category)

    notes: list[str] = []
    umbrellas = _umbrellas(doc, categories, used_categories)
    for cid, name in umbrellas.items():
        del categories[cid]
        notes.append(
            f"category {cid} {name!r} is only the supercategory of the others and no box uses it "
            "(Roboflow's umbrella class): it is not trained as a class"
        )
    if min(categories) <= 0:
        notes.append(f"category ids start at {min(categories)}: they become labels 1..N (0 is the background)")
    label_map, resolve = LabelMap.from_category_ids(categories)

    images: list[Any] = doc["images"]
    file_names = [
        _file_name(i["file_name"]) for i in images if isinstance(i, dict) and isinstance(i.get("file_name"), str)
    ]
    root, root_note = _image_root(annotation_file, image_dir, file_names)
    notes.insert(0, root_note)

    rejects: list[Reject] = []
    records: list[SourceRecord] = []
    for img in images:
        ok = isinstance(img, dict) and isinstance(img.get("id"), int | str) and isinstance(img.get("file_name"), str)
        if not ok:
            rejects.append(
                Reject(
                    str(img.get("id", "?")) if isinstance(img, dict) else "?",
                    annotation_file,
                    RejectReason.BAD_ANNOTATION,
                    f"image entry {str(img)[:200]} needs an 'id' and a 'file_name'",
                )
            )
            continue
        key = img["id"]
        image_id = str(key)
        boxes = boxes_by_image.pop(key, [])
        if key in bad_box_images:
            rejects.append(
                Reject(
                    image_id,
                    annotation_file,
                    RejectReason.BAD_BOX,
                    f"an annotation of image {image_id!r} has no valid 'bbox' [x, y, width, height]",
                )
            )
            continue
        width, height = img.get("width"), img.get("height")
        file_name = _file_name(img["file_name"])
        records.append(
            SourceRecord(
                image_id=image_id,
                filename=file_name,
                boxes=tuple(boxes),  # type: ignore[arg-type]  # no None: bad boxes were rejected above
                image_path=os.path.join(root, file_name),
                declared_size=(width, height) if type(width) is int and type(height) is int else None,
                annotation_file=annotation_file,
            )
        )
    for image_id, orphans in boxes_by_image.items():
        rejects.append(
            Reject(
                str(image_id),
                annotation_file,
                RejectReason.BAD_ANNOTATION,
                f"{len(orphans)} annotation(s) refer to image id {image_id!r}, which is not in 'images'",
            )
        )
    unique_files, same_file = split_duplicate_files(records)
    kept, same_id = split_duplicates(unique_files)
    return Scan(
        label_map=label_map,
        resolve=resolve,  # type: ignore[arg-type]
        num_records=len(images) + len(boxes_by_image),
        records=tuple(kept),
        rejects=tuple(rejects + same_file + same_id),
        category_ids={str(k): v for k, v in resolve.items()},
        notes=tuple(notes),
    )
