"""`--format auto`: each format told from its folder, and clear errors when it cannot be told."""

import json
import os
import re
import shutil

import pytest

from detx.components.data.detect import detect_format
from detx.components.data.ingest_options import DEFAULT_PATTERNS, IngestOptions
from detx.components.data.scan import DatasetError
from detx.components.data.sources import scan_source
from detx.components.data.spans import merge_scans, span_dir


@pytest.mark.parametrize(
    ("fmt", "pattern", "found"),
    [
        ("coco", "annotations.json", "found the COCO annotation file annotations.json"),
        ("voc", "Annotations/*.xml", "found 40 Pascal VOC file(s) in Annotations/"),
        ("yolo", "data.yaml", "found data.yaml and 40 YOLO label file(s)"),
        ("tfrecord", "*.*record*", "found 1 OD API TFRecord file(s)"),
    ],
)
def test_each_format_is_detected_with_what_decided_it(small_datasets, fmt, pattern, found):
    detected = detect_format(small_datasets[fmt])
    assert (detected.data_format, detected.pattern) == (fmt, pattern)
    assert detected.found == f"read {small_datasets[fmt]} as {fmt}: {found}"


def test_a_coco_file_in_annotations_is_found_and_the_summary_note_says_so(small_datasets, tmp_path):
    # CVAT's COCO export: annotations/instances_default.json beside images/.
    root = tmp_path / "cvat"
    shutil.copytree(small_datasets["coco"], root)
    os.makedirs(root / "annotations")
    os.rename(root / "annotations.json", root / "annotations" / "instances_default.json")
    (root / "notes.json").write_text(json.dumps({"exported_by": "someone"}))  # other JSON is not COCO
    assert detect_format(str(root)).pattern == "annotations/instances_default.json"
    scan = scan_source(IngestOptions(), str(root), DEFAULT_PATTERNS["auto"])
    assert scan.notes[0] == f"--format auto: read {root} as coco: found the COCO annotation file " + os.path.join(
        "annotations", "instances_default.json"
    )
    assert len(scan.records) == 40


def test_yolo_labels_without_data_yaml_are_detected(tmp_path):
    os.makedirs(tmp_path / "train" / "labels")
    (tmp_path / "train" / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    detected = detect_format(str(tmp_path))
    assert (detected.data_format, detected.found) == ("yolo", f"read {tmp_path} as yolo: found 1 YOLO label file(s)")


def test_nothing_found_names_what_was_looked_for_and_the_fix(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"x")
    message = (
        f"--format auto found no dataset in {tmp_path}: looked for COCO (one *.json, or annotations/*.json, with "
        "'images', 'annotations' and 'categories', or Roboflow's train/, valid/, test/ folders with "
        "_annotations.coco.json), Pascal VOC (Annotations/*.xml), YOLO (data.yaml, or "
        "labels/*.txt) and OD API TFRecords (*.*record*). Is --data the dataset folder? If it is, give its format: "
        "--format coco, voc, yolo or tfrecord (and --pattern)"
    )
    with pytest.raises(DatasetError, match=re.escape(message)):
        scan_source(IngestOptions(), str(tmp_path), DEFAULT_PATTERNS["auto"])


def test_two_formats_in_one_folder_is_ambiguous(small_datasets, tmp_path):
    root = tmp_path / "both"
    shutil.copytree(small_datasets["voc"], root)
    shutil.copy(os.path.join(small_datasets["tfrecord"], "shapes.tfrecord"), root)
    message = (
        f"--format auto found more than one format in {root} (voc: 40 Pascal VOC file(s) in Annotations/; "
        "tfrecord: 1 OD API TFRecord file(s)); give the one to read: --format voc or --format tfrecord"
    )
    with pytest.raises(DatasetError, match=re.escape(message)):
        detect_format(str(root))


def test_two_coco_files_ask_for_the_pattern(small_datasets, tmp_path):
    root = tmp_path / "two"
    shutil.copytree(small_datasets["coco"], root)
    shutil.copy(root / "annotations.json", root / "val.json")
    message = (
        f"{root} holds 2 COCO annotation files (annotations.json, val.json); give the one to read: "
        "--format coco --pattern annotations.json"
    )
    with pytest.raises(DatasetError, match=re.escape(message)):
        detect_format(str(root))


def test_a_pattern_the_user_gave_says_the_format_by_its_files(small_datasets, tmp_path):
    assert detect_format(small_datasets["voc"], "Annotations/0000*.xml").data_format == "voc"
    assert detect_format(small_datasets["coco"], "annotations.json").data_format == "coco"
    with pytest.raises(DatasetError, match=re.escape("matches no annotation files; give the format: --format coco")):
        detect_format(small_datasets["coco"], "nothing/*.json")


def test_each_span_of_a_span_root_is_detected_on_its_own(small_datasets, tmp_path):
    shutil.copytree(small_datasets["coco"], span_dir(str(tmp_path), 1))
    shutil.copytree(small_datasets["yolo"], span_dir(str(tmp_path), 2))
    options = IngestOptions(span_window=2)
    merged = merge_scans([(n, scan_source(options, span_dir(str(tmp_path), n), options.inner_pattern)) for n in (1, 2)])
    assert len(merged.records) == 80
    assert [n.split(" as ")[1].split(":")[0] for n in merged.notes if "--format auto" in n] == ["coco", "yolo"]


def test_roboflows_coco_export_is_found_at_its_root_and_read_as_one_dataset(small_datasets, tmp_path):
    # Roboflow's download: train/, valid/, test/, each with _annotations.coco.json beside its images,
    # and image ids that start again in each folder.
    root = tmp_path / "roboflow"
    source = small_datasets["coco"]
    with open(os.path.join(source, "annotations.json")) as f:
        doc = json.load(f)
    parts = {"train": doc["images"][:30], "valid": doc["images"][30:36], "test": doc["images"][36:]}
    for split, images in parts.items():
        os.makedirs(root / split)
        keep = {image["id"] for image in images}
        renumber = {image["id"]: n for n, image in enumerate(images)}
        for image in images:
            shutil.copy(os.path.join(source, "images", image["file_name"]), root / split / image["file_name"])
        part = {
            **doc,
            "images": [{**image, "id": renumber[image["id"]]} for image in images],
            "annotations": [
                {**a, "image_id": renumber[a["image_id"]]} for a in doc["annotations"] if a["image_id"] in keep
            ],
        }
        (root / split / "_annotations.coco.json").write_text(json.dumps(part))
    detected = detect_format(str(root))
    assert (detected.data_format, detected.pattern) == ("coco", "*/_annotations.coco.json")
    assert "Roboflow's COCO export, read as one dataset (test/, train/, valid/)" in detected.found
    scan = scan_source(IngestOptions(), str(root), DEFAULT_PATTERNS["auto"])
    whole = scan_source(IngestOptions(), source, DEFAULT_PATTERNS["auto"])
    assert scan.num_records == whole.num_records == len(doc["images"])
    assert sorted(r.image_id.split("/")[0] for r in scan.records) == sorted(
        split for split, images in parts.items() for _ in images
    )
    assert len({r.image_id for r in scan.records}) == len(doc["images"])  # ids 0.. in each folder stay apart
    boxes = sorted(len(r.boxes) for r in scan.records)
    assert boxes == sorted(len(r.boxes) for r in whole.records)
    assert dict(scan.label_map.items()) == dict(whole.label_map.items())
    assert scan.rejects == ()
