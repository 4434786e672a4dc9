import hashlib
import json
import os

import pytest
from PIL import Image

from detx.components.data.coco import scan_coco
from detx.components.data.synth import CLASSES, SynthConfig, generate, generate_image, write_dataset
from detx.components.data.tfrecord_source import iter_records, parse_od_example
from detx.components.data.voc import scan_voc


def _tree_digest(root: str) -> str:
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "tfrecord"])
def test_same_seed_same_bytes(tmp_path, fmt):
    config = SynthConfig(num_images=6, seed=3)
    a = write_dataset(str(tmp_path / "a"), config, fmt)
    b = write_dataset(str(tmp_path / "b"), config, fmt)
    assert _tree_digest(a.out_dir) == _tree_digest(b.out_dir)
    c = write_dataset(str(tmp_path / "c"), SynthConfig(num_images=6, seed=4), fmt)
    assert _tree_digest(a.out_dir) != _tree_digest(c.out_dir)


def test_images_are_640x480_jpeg_with_boxes_inside_and_some_empty():
    images = list(generate(SynthConfig(num_images=60, seed=1)))
    sizes = {Image.open(__import__("io").BytesIO(i.jpeg)).size for i in images}
    assert sizes == {(640, 480)}
    assert all(i.jpeg[:2] == b"\xff\xd8" for i in images)
    assert any(not i.objects for i in images), "some images must have no objects"
    names = {o.name for i in images for o in i.objects}
    assert names == set(CLASSES) and len(names) >= 3
    for i in images:
        for o in i.objects:
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
    assert max(len(i.objects) for i in images) > 1


def test_an_image_can_be_regenerated_on_its_own():
    config = SynthConfig(num_images=5, seed=2)
    assert generate_image(config, 4).jpeg == list(generate(config))[3].jpeg


def test_the_shape_is_drawn_inside_its_box():
    # A square's box must hold the pixels of the square: its centre differs from the border around it.
    config = SynthConfig(num_images=30, seed=5, empty_fraction=0.0)
    import numpy as np

    checked = 0
    for img in generate(config):
        pixels = np.asarray(Image.open(__import__("io").BytesIO(img.jpeg)), dtype=np.float32)
        for o in img.objects:
            if o.name != "square" or len(img.objects) > 1:
                continue
            x0, y0, x1, y1 = o.box
            inside = pixels[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3].reshape(-1, 3).mean(axis=0)
            assert np.abs(pixels[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3] - inside).mean() < 25  # flat fill + noise
            checked += 1
    assert checked > 0


def test_darker_and_class_weighted_configs_change_the_data():
    dark = list(generate(SynthConfig(num_images=20, seed=1, brightness=0.4)))
    bright = list(generate(SynthConfig(num_images=20, seed=1)))
    import numpy as np

    def mean(images):
        return np.mean([np.asarray(Image.open(__import__("io").BytesIO(i.jpeg))).mean() for i in images])

    assert mean(dark) < 0.6 * mean(bright)
    circles = list(generate(SynthConfig(num_images=20, seed=1, class_weights=(1.0, 0.0, 0.0))))
    assert {o.name for i in circles for o in i.objects} == {"circle"}


def test_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        write_dataset(str(out), SynthConfig(num_images=1), "coco")
    assert os.listdir(out) == ["keep.txt"]
    with pytest.raises(ValueError, match="unknown format 'darknet'"):
        write_dataset(str(tmp_path / "y"), SynthConfig(num_images=1), "darknet")
    assert not (tmp_path / "y").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_three_formats_hold_the_same_images_and_boxes(small_datasets):
    coco = scan_coco(
        os.path.join(small_datasets["coco"], "annotations.json"), os.path.join(small_datasets["coco"], "images")
    )
    voc = scan_voc(small_datasets["voc"])
    tfr = [
        parse_od_example(raw, "f", "?")
        for raw in iter_records(os.path.join(small_datasets["tfrecord"], "shapes.tfrecord"))
    ]

    def boxes_coco(r):
        names = coco.label_map.names
        return [(names[coco.resolve[b.category] - 1], b.xmin, b.ymin, b.xmax, b.ymax) for b in r.boxes]

    def boxes_voc(r):
        return [(b.category, b.xmin, b.ymin, b.xmax, b.ymax) for b in r.boxes]

    def boxes_tfr(r):
        w, h = r.declared_size
        return [
            (b.text, round(b.xmin * w, 3), round(b.ymin * h, 3), round(b.xmax * w, 3), round(b.ymax * h, 3))
            for b in r.boxes
        ]

    by_file_coco = {r.filename: boxes_coco(r) for r in coco.records}
    by_file_voc = {r.filename: boxes_voc(r) for r in voc.records}
    by_file_tfr = {r.filename: boxes_tfr(r) for r in tfr}
    assert len(by_file_coco) == 40
    assert by_file_coco == by_file_voc == by_file_tfr
    doc = json.load(open(os.path.join(small_datasets["coco"], "annotations.json")))
    assert sorted(c["id"] for c in doc["categories"]) == [2, 5, 9]  # sparse on purpose
