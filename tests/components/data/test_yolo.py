"""The YOLO reader: data.yaml, layouts, and every label problem as a quarantine reason."""

import io
import os
import re

import pytest
from PIL import Image

from detx.components.data.records import Converted, DataLimits, Reject, RejectReason, build_example
from detx.components.data.scan import DatasetError
from detx.components.data.yolo import parse_label_line, scan_yolo


def _image(path, size=(64, 48)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(out, format="JPEG")
    with open(path, "wb") as f:
        f.write(out.getvalue())


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _dataset(root, labels, yaml="names: [cat, dog]\n", split=""):
    """Images `<stem>.jpg` (64x48) with label files `<stem>.txt` (None: no label file)."""
    _write(os.path.join(root, "data.yaml"), yaml)
    for stem, text in labels.items():
        _image(os.path.join(root, split, "images", f"{stem}.jpg"))
        if text is not None:
            _write(os.path.join(root, split, "labels", f"{stem}.txt"), text)
    return str(root)


def _convert(scan, image_id):
    [record] = [r for r in scan.records if r.image_id == image_id]
    return build_example(record, scan.resolve, scan.label_map, DataLimits())


def _boxes(example):
    f = example.features.feature
    keys = ("image/object/bbox/xmin", "image/object/bbox/ymin", "image/object/bbox/xmax", "image/object/bbox/ymax")
    return [tuple(round(v, 4) for v in box) for box in zip(*(f[k].float_list.value for k in keys), strict=True)]


def test_a_yolo_dataset_becomes_records_with_labels_in_class_id_order(tmp_path):
    root = _dataset(tmp_path, {"a": "1 0.5 0.5 0.25 0.5\n0 0.25 0.25 0.1 0.1\n", "b": ""})
    scan = scan_yolo(root)
    assert scan.label_map.names == ("cat", "dog")
    assert scan.resolve == {0: 1, 1: 2}
    assert scan.num_records == 2 and not scan.rejects
    converted = _convert(scan, "a")
    assert isinstance(converted, Converted)
    f = converted.example.features.feature
    assert list(f["image/object/class/text"].bytes_list.value) == [b"dog", b"cat"]
    assert _boxes(converted.example) == [(0.375, 0.25, 0.625, 0.75), (0.2, 0.2, 0.3, 0.3)]
    assert list(f["image/filename"].bytes_list.value) == [b"a.jpg"]


def test_names_may_be_a_dict_of_class_ids(tmp_path):
    root = _dataset(tmp_path, {"a": "2 0.5 0.5 0.2 0.2\n"}, yaml="nc: 2\nnames:\n  0: cat\n  2: dog\n")
    scan = scan_yolo(root)
    assert scan.label_map.names == ("cat", "dog")
    assert isinstance(_convert(scan, "a"), Converted)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("nc: 2\n", "has no 'names'; list the classes, e.g. names: \\[cat, dog\\]"),
        ("names: [cat, dog]\nnc: 3\n", "says nc: 3 but 'names' lists 2 classes; make them agree"),
        ("names: []\n", "'names' is empty"),
        ("names: cat\n", "'names' must be a list or a \\{class id: name\\} mapping"),
        ("names: [cat, no]\n", "class 1: False needs an integer id and a name; quote names YAML reads as booleans"),
        ("names: [cat\n", "is not valid YAML"),
    ],
)
def test_a_data_yaml_that_cannot_be_used_stops_with_a_clear_message(tmp_path, yaml, message):
    with pytest.raises(DatasetError, match=message):
        scan_yolo(_dataset(tmp_path, {"a": ""}, yaml=yaml))


def test_without_data_yaml_a_classes_txt_names_the_classes_else_the_scan_says_what_to_write(tmp_path):
    root = _dataset(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    os.remove(os.path.join(root, "data.yaml"))
    with pytest.raises(DatasetError, match=re.escape("write data.yaml with names: [first class, second class, ...]")):
        scan_yolo(root)
    _write(os.path.join(root, "labels", "classes.txt"), "cat\ndog\n")  # LabelImg writes it beside the labels
    scan = scan_yolo(root)
    assert scan.label_map.names == ("cat", "dog")
    assert not scan.rejects  # classes.txt is not a label file without an image


def test_a_class_id_outside_data_yaml_quarantines_the_image(tmp_path):
    scan = scan_yolo(_dataset(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n", "b": ""}))
    [reject] = scan.rejects
    assert (reject.image_id, reject.reason) == ("a", RejectReason.UNKNOWN_CATEGORY)
    assert reject.file == os.path.join(str(tmp_path), "labels", "a.txt")
    assert reject.detail == (
        f"line 2 of {reject.file} has class id 7, which the dataset's names do not list (0: cat, 1: dog); "
        "fix the line or add the class to data.yaml"
    )
    assert [r.image_id for r in scan.records] == ["b"]
    assert scan.num_records == 2


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        ("0 0.5 0.5 0.2", "has 4 values ('0 0.5 0.5 0.2'); a YOLO box is 5: class x_center y_center width height"),
        ("0 0.5 0.5 0.2 0.2 0.9", "has 6 values"),
        ("0 0.5 0.5 wide 0.2", "has a value that is not a number ('0 0.5 0.5 wide 0.2')"),
        ("0.5 0.5 0.5 0.2 0.2", "starts with '0.5', not an integer class id"),
    ],
)
def test_a_malformed_line_quarantines_the_image(tmp_path, line, detail):
    scan = scan_yolo(_dataset(tmp_path, {"a": f"0 0.5 0.5 0.2 0.2\n{line}\n"}))
    [reject] = scan.rejects
    assert reject.reason == RejectReason.BAD_ANNOTATION
    assert reject.detail.startswith(f"line 2 of {reject.file} {detail}")
    assert not scan.records


def test_a_box_outside_the_image_beyond_the_tolerance_is_quarantined_and_within_it_clipped(tmp_path):
    # 64 px wide: 1 px over the right edge is within the 2 px tolerance, 6.4 px is not.
    root = _dataset(tmp_path, {"in": "0 0.9 0.5 0.2328125 0.2\n", "out": "0 0.95 0.5 0.2 0.2\n"})
    scan = scan_yolo(root)
    clipped = _convert(scan, "in")
    assert isinstance(clipped, Converted) and clipped.num_clipped == 1
    assert _boxes(clipped.example) == [(0.7836, 0.4, 1.0, 0.6)]
    outside = _convert(scan, "out")
    assert isinstance(outside, Reject) and outside.reason == RejectReason.BOX_OUTSIDE_IMAGE
    assert "extends outside the 64x48 image by more than 2 px" in outside.detail


def test_a_box_with_no_width_is_a_bad_box(tmp_path):
    scan = scan_yolo(_dataset(tmp_path, {"a": "0 0.5 0.5 0 0.2\n"}))
    result = _convert(scan, "a")
    assert isinstance(result, Reject) and result.reason == RejectReason.BAD_BOX


def test_an_image_without_a_label_file_has_no_objects(tmp_path):
    scan = scan_yolo(_dataset(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "empty": None}))
    assert not scan.rejects
    converted = _convert(scan, "empty")
    assert isinstance(converted, Converted)
    assert list(converted.example.features.feature["detx/stats/num_objects"].int64_list.value) == [0]


def test_a_label_file_without_an_image_is_reported(tmp_path):
    root = _dataset(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    _write(os.path.join(root, "labels", "ghost.txt"), "1 0.5 0.5 0.2 0.2\n")
    scan = scan_yolo(root)
    [reject] = scan.rejects
    assert (reject.image_id, reject.reason) == ("ghost", RejectReason.MISSING_IMAGE)
    assert reject.detail.startswith(f"label file {root}/labels/ghost.txt has no image {root}/images/ghost{{.jpg,")
    assert reject.detail.endswith("}; add the image or remove the label file")
    assert scan.num_records == 2 and [r.image_id for r in scan.records] == ["a"]


def test_roboflow_split_folders_are_read_as_one_dataset_and_an_image_in_two_splits_is_a_duplicate(tmp_path):
    yaml = "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 2\nnames: ['cat', 'dog']\n"
    _dataset(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "both": ""}, yaml=yaml, split="train")
    _dataset(tmp_path, {"b": "1 0.5 0.5 0.2 0.2\n", "both": ""}, yaml=yaml, split="valid")
    _dataset(tmp_path, {"c": None}, yaml=yaml, split="test")
    scan = scan_yolo(str(tmp_path))
    assert sorted(r.filename for r in scan.records) == ["test/images/c.jpg", "train/images/a.jpg", "valid/images/b.jpg"]
    assert sorted((r.image_id, r.reason) for r in scan.rejects) == [("both", RejectReason.DUPLICATE_IMAGE_ID)] * 2
    assert scan.num_records == 5


def test_ultralytics_split_folders_inside_images_and_labels(tmp_path):
    _dataset(tmp_path, {"train2017/a": "0 0.5 0.5 0.2 0.2\n", "val2017/b": "1 0.5 0.5 0.2 0.2\n"})
    scan = scan_yolo(str(tmp_path))
    assert sorted(r.image_id for r in scan.records) == ["train2017/a", "val2017/b"]
    assert all(len(r.boxes) == 1 for r in scan.records) and not scan.rejects


def test_a_polygon_line_becomes_its_extent(tmp_path):
    box = parse_label_line("1 0.1 0.2 0.5 0.1 0.3 0.6", {0: "cat", 1: "dog"})
    assert (box.category, box.xmin, box.ymin, box.xmax, box.ymax) == (1, 0.1, 0.1, 0.5, 0.6)


def test_no_images_folder_stops_with_the_layout_to_use(tmp_path):
    _write(os.path.join(tmp_path, "data.yaml"), "names: [cat]\n")
    message = r"no images folder under .*: YOLO images go in images/ \(labels in labels/\)"
    with pytest.raises(DatasetError, match=message):
        scan_yolo(str(tmp_path))


def test_a_corner_off_the_edge_by_the_rounding_of_6_decimals_is_put_on_it():
    box = parse_label_line("0 0.900000 0.100000 0.200001 0.200001", {0: "cat"})
    assert (box.ymin, box.xmax) == (0.0, 1.0)
    box = parse_label_line("0 0.9 0.5 0.21 0.2", {0: "cat"})
    assert box.xmax == pytest.approx(1.005)  # further out: left to build_example's pixel tolerance
