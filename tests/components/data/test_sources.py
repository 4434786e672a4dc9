"""COCO, VOC and TFRecord readers: whole-dataset errors and record-level rejects; span patterns."""

import json
import os
import shutil

import pytest
import tensorflow as tf

from detx.components.data.coco import scan_coco
from detx.components.data.records import RejectReason
from detx.components.data.scan import DatasetError
from detx.components.data.sources import with_span
from detx.components.data.tfrecord_source import iter_records, parse_od_example, scan_tfrecords
from detx.components.data.voc import scan_voc


def _coco(tmp_path, doc):
    path = tmp_path / "annotations.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _doc(**overrides):
    doc = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "2.jpg", "width": 64, "height": 48},
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 20], "iscrowd": 1}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "ant"}],
    }
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty; expected a JSON object"),
        ("   \n", "is empty"),
        ("{not json", "is not valid JSON"),
        ("[]", "must hold a JSON object, not list"),
        (json.dumps({"images": [], "annotations": [], "categories": []}), "lists no images"),
        (json.dumps({"images": [{"id": 1}], "categories": []}), "has no 'annotations' list"),
        (json.dumps(_doc(categories=[])), "'categories' is empty"),
        (
            json.dumps(_doc(categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])),
            "category id 1 is defined twice",
        ),
    ],
)
def test_coco_file_that_cannot_be_used_stops_with_a_clear_message(tmp_path, content, message):
    with pytest.raises(DatasetError, match=message):
        scan_coco(_coco(tmp_path, content), str(tmp_path))


def test_coco_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_coco(str(tmp_path / "nope.json"), str(tmp_path))


def test_coco_sparse_ids_crowd_flag_and_paths(tmp_path):
    scan = scan_coco(_coco(tmp_path, _doc()), str(tmp_path / "imgs"))
    assert scan.label_map.names == ("ant", "cat")
    assert dict(scan.resolve) == {3: 1, 7: 2}
    assert scan.num_records == 2 and not scan.rejects
    first = scan.records[0]
    assert first.image_id == "1" and first.image_path == str(tmp_path / "imgs" / "1.jpg")
    assert first.boxes[0].is_crowd and (first.boxes[0].xmax, first.boxes[0].ymax) == (11.0, 22.0)
    assert scan.records[1].boxes == ()


def test_coco_duplicate_ids_quarantine_every_copy(tmp_path):
    doc = _doc()
    doc["images"].append({"id": 1, "file_name": "1b.jpg", "width": 64, "height": 48})
    scan = scan_coco(_coco(tmp_path, doc), str(tmp_path))
    assert [r.image_id for r in scan.records] == ["2"]
    dups = [r for r in scan.rejects if r.reason is RejectReason.DUPLICATE_IMAGE_ID]
    assert len(dups) == 2 and "occurs 2 times" in dups[0].detail


def test_coco_orphan_annotations_and_malformed_entries_are_reported(tmp_path):
    doc = _doc()
    doc["annotations"].append({"id": 2, "image_id": 99, "category_id": 7, "bbox": [0, 0, 1, 1]})
    doc["annotations"].append({"id": 3, "image_id": 2, "category_id": 7, "bbox": [0, 0, "x", 1]})
    doc["images"].append({"file_name": "noid.jpg"})
    scan = scan_coco(_coco(tmp_path, doc), str(tmp_path))
    reasons = sorted((r.image_id, r.reason.value) for r in scan.rejects)
    assert reasons == [("2", "bad_box"), ("99", "bad_annotation"), ("?", "bad_annotation")]
    assert scan.num_records == 4  # three images and one orphan group


def _voc_xml(filename="a.jpg", objects=(("cat", 1, 1, 10, 20),), size=(64, 48)):
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
        "</bndbox></object>"
        for n, a, b, c, d in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>"
    )


def _voc_dir(tmp_path, files):
    (tmp_path / "Annotations").mkdir()
    for name, content in files.items():
        (tmp_path / "Annotations" / name).write_text(content)
    return str(tmp_path)


def test_voc_corners_are_one_based_inclusive(tmp_path):
    scan = scan_voc(_voc_dir(tmp_path, {"a.xml": _voc_xml()}))
    box = scan.records[0].boxes[0]
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (0.0, 0.0, 10.0, 20.0)
    assert scan.records[0].declared_size == (64, 48)
    assert scan.label_map.names == ("cat",)


def test_voc_empty_and_broken_files_are_quarantined_not_fatal(tmp_path):
    scan = scan_voc(
        _voc_dir(
            tmp_path,
            {
                "a.xml": _voc_xml(),
                "b.xml": "",
                "c.xml": "<annotation><filename>",
                "d.xml": _voc_xml("d.jpg", objects=(("cat", 1, "?", 10, 20),)),
                "e.xml": _voc_xml("a.jpg"),  # same image as a.xml
            },
        )
    )
    reasons = sorted((r.image_id, r.reason.value) for r in scan.rejects)
    assert reasons == [
        ("a", "duplicate_image_id"),
        ("a", "duplicate_image_id"),
        ("b", "bad_annotation"),
        ("c", "bad_annotation"),
        ("d", "bad_box"),
    ]
    assert any("is empty" in r.detail for r in scan.rejects)
    assert scan.records == ()


def test_voc_label_map_file_makes_other_classes_unknown(tmp_path):
    root = _voc_dir(tmp_path, {"a.xml": _voc_xml(objects=(("cat", 1, 1, 5, 5), ("dog", 1, 1, 5, 5)))})
    (tmp_path / "label_map.pbtxt").write_text('item { id: 1 name: "cat" }')
    scan = scan_voc(root)
    assert dict(scan.resolve) == {"cat": 1}
    assert "dog" not in scan.resolve


def test_voc_without_annotations_stops(tmp_path):
    with pytest.raises(DatasetError, match="no Pascal VOC annotation files match"):
        scan_voc(str(tmp_path))


def test_tfrecord_scan_finds_duplicates_and_derives_label_map(tmp_path, small_datasets):
    src = os.path.join(small_datasets["tfrecord"], "shapes.tfrecord")
    raws = list(iter_records(src))
    with tf.io.TFRecordWriter(str(tmp_path / "a.tfrecord")) as w:
        for raw in raws[:5] + raws[:1]:
            w.write(raw)
    scan = scan_tfrecords(str(tmp_path))  # no label_map.pbtxt: derived from label/text pairs
    assert scan.label_map.names == ("circle", "square", "triangle")
    assert scan.num_records == 6
    first = parse_od_example(raws[0], "a", "?")
    assert scan.duplicate_ids == frozenset({first.image_id})


def test_tfrecord_gzip_and_label_map_file(tmp_path, small_datasets):
    raws = list(iter_records(os.path.join(small_datasets["tfrecord"], "shapes.tfrecord")))
    with tf.io.TFRecordWriter(str(tmp_path / "a.tfrecord.gz"), options="GZIP") as w:
        for raw in raws[:3]:
            w.write(raw)
    shutil.copy(os.path.join(small_datasets["tfrecord"], "label_map.pbtxt"), tmp_path)
    scan = scan_tfrecords(str(tmp_path))
    assert scan.num_records == 3 and scan.tfrecord_files[0].endswith(".gz")


def test_tfrecord_errors(tmp_path):
    with pytest.raises(DatasetError, match="no TFRecord files match"):
        scan_tfrecords(str(tmp_path))
    (tmp_path / "bad.tfrecord").write_bytes(b"\x00" * 40)
    with pytest.raises(DatasetError, match="not a readable TFRecord file"):
        scan_tfrecords(str(tmp_path))
    assert parse_od_example(b"\xff\xff\xff", "f", "f:1").reason is RejectReason.BAD_ANNOTATION


# Without TFX's driver (open-source KFP), the run's span parameter fills `{SPAN}`.
@pytest.mark.parametrize(
    "pattern,span,expected",
    [
        ("span-{SPAN}/annotations.json", 3, "span-3/annotations.json"),
        ("span-{SPAN:4}/Annotations/*.xml", 12, "span-0012/Annotations/*.xml"),
        ("annotations.json", 9, "annotations.json"),
    ],
)
def test_span_placeholders_are_filled(pattern, span, expected):
    assert with_span(pattern, span) == expected


def test_a_bad_width_names_the_fix():
    with pytest.raises(ValueError, match=r"must be a number, as in \{SPAN:4\}"):
        with_span("span-{SPAN:x}/a.json", 1)
