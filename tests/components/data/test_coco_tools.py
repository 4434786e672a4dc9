"""COCO exports as CVAT, Label Studio, Roboflow and FiftyOne write them, read with no options."""

import json
import os

from PIL import Image

from detx.components.data import features as F
from detx.components.data.coco import scan_coco
from detx.components.data.records import Converted, DataLimits, RejectReason, build_example

W, H = 64, 48


def _image(path, color=(200, 30, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (W, H), color).save(path, quality=95)


def _write(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f)
    return str(path)


def _cvat(root):
    """CVAT "COCO 1.0": annotations/instances_default.json, images/ (task subfolders kept), box polygons."""
    for name in ("frame_000000.jpg", "sub/frame_000001.jpg"):
        _image(os.path.join(root, "images", name))
    return _write(
        os.path.join(root, "annotations", "instances_default.json"),
        {
            "licenses": [{"name": "", "id": 0, "url": ""}],
            "info": {"contributor": "", "date_created": "", "version": "", "year": ""},
            "categories": [
                {"id": 1, "name": "car", "supercategory": ""},
                {"id": 2, "name": "bus", "supercategory": ""},
            ],
            "images": [
                {"id": 1, "width": W, "height": H, "file_name": "frame_000000.jpg", "license": 0, "flickr_url": ""},
                {"id": 2, "width": W, "height": H, "file_name": "sub/frame_000001.jpg", "date_captured": 0},
            ],
            "annotations": [
                {
                    "id": 1,
                    "image_id": 1,
                    "category_id": 2,
                    "segmentation": [],
                    "area": 120.5,
                    "bbox": [1.5, 2.25, 10.0, 12.05],
                    "iscrowd": 0,
                    "attributes": {"occluded": False, "rotation": 0.0},
                }
            ],
        },
    )


def test_cvat_export_resolves_against_the_image_folder(tmp_path):
    ann = _cvat(str(tmp_path))
    scan = scan_coco(ann, str(tmp_path / "images"))
    assert not scan.rejects
    assert [r.image_path for r in scan.records] == [
        str(tmp_path / "images" / "frame_000000.jpg"),
        str(tmp_path / "images" / "sub" / "frame_000001.jpg"),
    ]
    assert scan.label_map.names == ("car", "bus")
    box = scan.records[0].boxes[0]
    assert (box.category, box.xmin, box.ymin, box.xmax, box.ymax) == (2, 1.5, 2.25, 11.5, 14.3)
    assert "relative to " + str(tmp_path / "images") + " (the image folder): 2 of 2 sampled found" in scan.notes[0]


def _label_studio(root, windows=False):
    """Label Studio "COCO": result.json beside images/, file names relative to the export folder, ids from 0."""
    sep = "\\" if windows else "/"
    images, anns = [], []
    for i in range(3):
        _image(os.path.join(root, "images", f"{i}.jpg"))
        images.append({"width": W, "height": H, "id": i, "file_name": f"images{sep}{i}.jpg"})
        anns.append(
            {
                "id": i,
                "image_id": i,
                "category_id": i % 2,
                "segmentation": [],
                "bbox": [4.0, 5.0, 20.0, 10.0],
                "ignore": 0,
                "iscrowd": 0,
                "area": 200.0,
            }
        )
    return _write(
        os.path.join(root, "result.json"),
        {
            "images": images,
            "categories": [{"id": 0, "name": "Airplane"}, {"id": 1, "name": "Car"}],
            "annotations": anns,
            "info": {"year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio"},
        },
    )


def test_label_studio_export_resolves_against_the_export_folder_and_renumbers_id_0(tmp_path):
    ann = _label_studio(str(tmp_path))
    # The conventional image folder (what detx passes by default) is images/: file names
    # like images/0.jpg are relative to the folder of result.json instead.
    scan = scan_coco(ann, str(tmp_path / "images"))
    assert not scan.rejects and len(scan.records) == 3
    assert scan.records[0].image_path == str(tmp_path / "images" / "0.jpg")
    assert scan.records[0].image_id == "0"
    assert dict(scan.resolve) == {0: 1, 1: 2} and scan.category_ids == {"0": 1, "1": 2}
    assert scan.label_map.names == ("Airplane", "Car")
    assert scan.notes == (
        f"image file names are relative to {tmp_path} (the annotation file's folder): 3 of 3 sampled found",
        "category ids start at 0: they become labels 1..N (0 is the background)",
    )


def test_label_studio_export_from_windows_uses_backslashes(tmp_path):
    scan = scan_coco(_label_studio(str(tmp_path), windows=True), str(tmp_path / "images"))
    assert scan.records[2].filename == "images/2.jpg"
    assert scan.records[2].image_path == str(tmp_path / "images" / "2.jpg")


def test_label_studio_record_converts_with_its_boxes(tmp_path):
    scan = scan_coco(_label_studio(str(tmp_path)), str(tmp_path / "images"))
    out = build_example(scan.records[1], scan.resolve, scan.label_map, DataLimits())
    assert isinstance(out, Converted)
    feats = out.example.features.feature
    assert feats[F.LABEL].int64_list.value == [2]
    assert feats[F.TEXT].bytes_list.value == [b"Car"]
    assert list(feats[F.XMIN].float_list.value) == [4.0 / W]
    assert list(feats[F.YMAX].float_list.value) == [15.0 / H]


def _roboflow(split_dir):
    """Roboflow "COCO": <split>/_annotations.coco.json beside the images, and an umbrella category 0."""
    names = ["hard-hat-abc12", "head", "helmet"]
    for i in range(2):
        _image(os.path.join(split_dir, f"img{i}_jpg.rf.0123abcd.jpg"))
    return _write(
        os.path.join(split_dir, "_annotations.coco.json"),
        {
            "info": {"year": "2024", "version": "3", "description": "Exported from roboflow.com"},
            "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
            "categories": [
                {"id": 0, "name": names[0], "supercategory": "none"},
                {"id": 1, "name": names[1], "supercategory": names[0]},
                {"id": 2, "name": names[2], "supercategory": names[0]},
            ],
            "images": [
                {
                    "id": i,
                    "license": 1,
                    "file_name": f"img{i}_jpg.rf.0123abcd.jpg",
                    "height": H,
                    "width": W,
                    "date_captured": "2024-01-01T00:00:00+00:00",
                    "extra": {"name": f"img{i}.jpg"},
                }
                for i in range(2)
            ],
            "annotations": [
                {
                    "id": 0,
                    "image_id": 0,
                    "category_id": 1,
                    "bbox": [1, 1, 9, 9],
                    "area": 81,
                    "segmentation": [],
                    "iscrowd": 0,
                },
                {
                    "id": 1,
                    "image_id": 1,
                    "category_id": 2,
                    "bbox": [2, 2, 9, 9],
                    "area": 81,
                    "segmentation": [],
                    "iscrowd": 0,
                },
            ],
        },
    )


def test_roboflow_export_drops_the_umbrella_category_and_finds_images_beside_the_file(tmp_path):
    ann = _roboflow(str(tmp_path / "train"))
    scan = scan_coco(ann, str(tmp_path / "train" / "images"))
    assert not scan.rejects
    assert scan.label_map.names == ("head", "helmet")
    assert dict(scan.resolve) == {1: 1, 2: 2}
    assert scan.records[0].image_path == str(tmp_path / "train" / "img0_jpg.rf.0123abcd.jpg")
    assert (
        "category 0 'hard-hat-abc12' is only the supercategory of the others and no box uses it "
        "(Roboflow's umbrella class): it is not trained as a class"
    ) in scan.notes


def test_a_used_or_unrelated_empty_category_stays_a_class(tmp_path):
    doc = json.loads(open(_roboflow(str(tmp_path / "train"))).read())
    doc["annotations"][0]["category_id"] = 0  # a box uses the umbrella: it is a real class after all
    doc["categories"].append({"id": 7, "name": "vest", "supercategory": "hard-hat-abc12"})  # no box yet
    scan = scan_coco(_write(str(tmp_path / "a.json"), doc), str(tmp_path / "train"))
    assert scan.label_map.names == ("hard-hat-abc12", "head", "helmet", "vest")
    assert not any("umbrella" in n for n in scan.notes)


def test_coco_own_categories_name_themselves_as_supercategory_and_stay(tmp_path):
    doc = json.loads(open(_cvat(str(tmp_path))).read())
    doc["categories"] = [
        {"supercategory": "person", "id": 1, "name": "person"},
        {"supercategory": "vehicle", "id": 3, "name": "car"},
        {"supercategory": "vehicle", "id": 6, "name": "bus"},
    ]
    scan = scan_coco(_write(str(tmp_path / "a.json"), doc), str(tmp_path / "images"))
    assert scan.label_map.names == ("person", "car", "bus")


def test_fiftyone_export_finds_the_data_folder(tmp_path):
    """FiftyOne COCODetectionDataset: labels.json beside data/."""
    _image(str(tmp_path / "data" / "000001.jpg"))
    doc = {
        "info": {"year": "", "version": "", "description": "Exported from FiftyOne", "date_created": "2024"},
        "licenses": [],
        "categories": [
            {"id": 1, "name": "cat", "supercategory": None},
            {"id": 2, "name": "dog", "supercategory": None},
        ],
        "images": [{"id": 1, "file_name": "000001.jpg", "height": H, "width": W, "license": None, "coco_url": None}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 2,
                "bbox": [3.3, 4.4, 5.5, 6.6],
                "area": 36.3,
                "iscrowd": 0,
                "score": 0.9,
            }
        ],
    }
    scan = scan_coco(_write(str(tmp_path / "labels.json"), doc), str(tmp_path / "images"))
    assert scan.records[0].image_path == str(tmp_path / "data" / "000001.jpg")
    assert "(the data/ folder beside the annotation file)" in scan.notes[0]
    assert scan.label_map.names == ("cat", "dog")


def test_images_found_nowhere_keep_the_image_folder_and_say_where_detx_looked(tmp_path):
    ann = _write(str(tmp_path / "annotations.json"), json.loads(open(_label_studio(str(tmp_path / "x"))).read()))
    scan = scan_coco(ann, str(tmp_path / "images"))
    assert scan.records[0].image_path == str(tmp_path / "images" / "images" / "0.jpg")
    assert scan.notes[0].startswith("none of 3 sampled images was found under ")
    assert scan.notes[0].endswith("(set --image-dir to the folder the file names are relative to)")


def test_unlisted_images_and_images_listed_twice_are_quarantined_with_reasons(tmp_path):
    doc = json.loads(open(_label_studio(str(tmp_path))).read())
    doc["annotations"].append({"id": 9, "image_id": 42, "category_id": 0, "bbox": [1, 1, 2, 2]})
    doc["annotations"].append({"id": 10, "image_id": [1], "category_id": 0, "bbox": [1, 1, 2, 2]})
    doc["images"].append({"width": W, "height": H, "id": 7, "file_name": "images/1.jpg"})  # image 1 again, as 7
    doc["images"].append(dict(doc["images"][0]))  # image 0 listed twice, same id
    scan = scan_coco(_write(str(tmp_path / "result.json"), doc), str(tmp_path / "images"))
    got = sorted((r.image_id, r.reason) for r in scan.rejects)
    assert got == [
        ("0", RejectReason.DUPLICATE_IMAGE_ID),
        ("0", RejectReason.DUPLICATE_IMAGE_ID),
        ("1", RejectReason.DUPLICATE_IMAGE_FILE),
        ("42", RejectReason.BAD_ANNOTATION),
        ("7", RejectReason.DUPLICATE_IMAGE_FILE),
        ("[1]", RejectReason.BAD_ANNOTATION),
    ]
    detail = {r.image_id: r.detail for r in scan.rejects}
    assert detail["7"] == (
        f"image file {tmp_path / 'images' / '1.jpg'} is listed under 2 image ids (1, 7); "
        "its boxes may be split between the entries: list each image once"
    )
    assert detail["42"] == "1 annotation(s) refer to image id 42, which is not in 'images'"
    assert [r.image_id for r in scan.records] == ["2"]
    assert scan.num_records == 5 + 2  # five image entries, two groups of unlisted annotations


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "result.json"
    _label_studio(str(tmp_path))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(scan_coco(str(path), str(tmp_path)).records) == 3
