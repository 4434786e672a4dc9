"""Pascal VOC exports as CVAT and LabelImg write them, read with no options."""

import os

from PIL import Image

from detx.components.data import features as F
from detx.components.data.records import Converted, DataLimits, RejectReason, build_example
from detx.components.data.voc import scan_voc

W, H = 64, 48


def _image(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (W, H), (20, 120, 200)).save(path, quality=95)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _cvat_xml(filename, box, size=(W, H)):
    """CVAT "PASCAL VOC 1.1" (Datumaro): float corners, difficult/truncated/occluded, attributes."""
    x0, y0, x1, y1 = box
    return f"""<annotation>
  <folder></folder>
  <filename>{filename}</filename>
  <source><database>Unknown</database><annotation>Unknown</annotation><image>Unknown</image></source>
  <size><width>{size[0]}</width><height>{size[1]}</height><depth></depth></size>
  <segmented>0</segmented>
  <object>
    <name>person</name>
    <truncated>1</truncated>
    <occluded>0</occluded>
    <difficult>1</difficult>
    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>
    <attributes><attribute><name>rotation</name><value>0.0</value></attribute></attributes>
  </object>
</annotation>"""


def _labelimg_xml(filename, box, size="<size><width>64</width><height>48</height><depth>3</depth></size>"):
    """LabelImg: folder, absolute path of the labeller's machine, integer corners from 1, pose/truncated/difficult."""
    x0, y0, x1, y1 = box
    return f"""<annotation>
	<folder>images</folder>
	<filename>{filename}</filename>
	<path>C:\\Users\\someone\\Pictures\\images\\{filename}</path>
	<source><database>Unknown</database></source>
	{size}
	<segmented>0</segmented>
	<object>
		<name>dog</name>
		<pose>Unspecified</pose>
		<truncated>0</truncated>
		<difficult>0</difficult>
		<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>
	</object>
</annotation>"""


def test_cvat_export_with_task_subfolders_and_float_corners(tmp_path):
    root = str(tmp_path)
    for name in ("task_1/frame_000000", "task_2/frame_000000"):
        _image(os.path.join(root, "JPEGImages", name + ".jpg"))
        _write(os.path.join(root, "Annotations", name + ".xml"), _cvat_xml(name + ".jpg", (0.0, 2.5, 30.25, 40.0)))
    _write(os.path.join(root, "ImageSets", "Main", "default.txt"), "task_1/frame_000000\ntask_2/frame_000000\n")
    _write(os.path.join(root, "labelmap.txt"), "# label:color_rgb:parts:actions\nperson:250,50,83::\n")
    scan = scan_voc(root)
    assert not scan.rejects
    assert [r.image_id for r in scan.records] == ["task_1/frame_000000", "task_2/frame_000000"]
    assert scan.records[1].image_path == os.path.join(root, "JPEGImages", "task_2/frame_000000.jpg")
    box = scan.records[0].boxes[0]
    assert (box.category, box.xmin, box.ymin, box.xmax, box.ymax) == ("person", 0.0, 2.5, 30.25, 40.0)
    assert scan.notes == (
        f"VOC images are found <filename> under the image folder ({root}/JPEGImages): 2 of 2 sampled found",
        "box corners are continuous 0-based coordinates (some are decimals or 0, as CVAT writes them)",
        "2 annotation files are in subfolders of the annotation folder",
    )


def test_labelimg_flat_export_keeps_the_devkit_convention_and_ignores_difficult(tmp_path):
    root = str(tmp_path)
    _image(os.path.join(root, "JPEGImages", "a.jpg"))
    _write(os.path.join(root, "Annotations", "a.xml"), _labelimg_xml("a.jpg", (1, 1, 64, 48)))
    scan = scan_voc(root)
    box = scan.records[0].boxes[0]
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (0.0, 0.0, 64.0, 48.0)
    assert scan.notes[1] == "box corners are 1-based integers (the VOC devkit's convention)"
    out = build_example(scan.records[0], scan.resolve, scan.label_map, DataLimits())
    assert isinstance(out, Converted) and list(out.example.features.feature[F.XMAX].float_list.value) == [1.0]


def test_labelimg_xml_beside_each_image_in_subfolders(tmp_path):
    """LabelImg's default save folder is the image's own; two cameras may both have a 0001.jpg."""
    root = str(tmp_path)
    for cam in ("cam1", "cam2"):
        _image(os.path.join(root, "photos", cam, "0001.jpg"))
        _write(os.path.join(root, "photos", cam, "0001.xml"), _labelimg_xml("0001.jpg", (5, 5, 20, 20)))
    scan = scan_voc(root, pattern="photos/*.xml")
    assert not scan.rejects
    assert [r.image_id for r in scan.records] == ["cam1/0001", "cam2/0001"]
    assert scan.records[0].image_path == os.path.join(root, "photos", "cam1", "0001.jpg")
    assert scan.notes[0].startswith("VOC images are found beside each annotation file (LabelImg's default)")


def test_nested_annotations_mirror_nested_images_and_double_star_is_accepted(tmp_path):
    root = str(tmp_path)
    for cam in ("cam1", "cam2"):
        _image(os.path.join(root, "JPEGImages", cam, "0001.jpg"))
        _write(os.path.join(root, "Annotations", cam, "0001.xml"), _labelimg_xml("0001.jpg", (5, 5, 20, 20)))
    for pattern in ("Annotations/*.xml", "Annotations/**/*.xml"):
        scan = scan_voc(root, pattern=pattern)
        assert [r.image_path for r in scan.records] == [
            os.path.join(root, "JPEGImages", "cam1", "0001.jpg"),
            os.path.join(root, "JPEGImages", "cam2", "0001.jpg"),
        ]
        assert [r.image_id for r in scan.records] == ["cam1/0001", "cam2/0001"]
        assert "the annotation's subfolder and <filename> under the image folder" in scan.notes[0]


def test_size_missing_or_zero_is_read_from_the_image(tmp_path):
    root = str(tmp_path)
    sizes = {
        "zero": "<size><width>0</width><height>0</height><depth>3</depth></size>",
        "missing": "",
        "empty": "<size><width></width><height></height></size>",
    }
    for stem, size in sizes.items():
        _image(os.path.join(root, "JPEGImages", stem + ".jpg"))
        _write(os.path.join(root, "Annotations", stem + ".xml"), _labelimg_xml(stem + ".jpg", (2, 3, 40, 30), size))
    scan = scan_voc(root)
    assert [r.declared_size for r in scan.records] == [None, None, None]
    for record in scan.records:
        out = build_example(record, scan.resolve, scan.label_map, DataLimits())
        assert isinstance(out, Converted)
        feats = out.example.features.feature
        assert (feats[F.WIDTH].int64_list.value[0], feats[F.HEIGHT].int64_list.value[0]) == (W, H)
        assert list(feats[F.XMIN].float_list.value) == [1.0 / W]


def test_a_size_that_is_not_a_number_is_a_bad_annotation(tmp_path):
    root = str(tmp_path)
    _write(
        os.path.join(root, "Annotations", "a.xml"),
        _labelimg_xml("a.jpg", (1, 1, 5, 5), "<size><width>wide</width><height>48</height></size>"),
    )
    _write(os.path.join(root, "Annotations", "b.xml"), _labelimg_xml("b.jpg", (1, 1, 5, 5)))
    scan = scan_voc(root)
    [reject] = scan.rejects
    assert (reject.image_id, reject.reason) == ("a", RejectReason.BAD_ANNOTATION)
    assert reject.detail == f"{root}/Annotations/a.xml <size> has no numeric <width> (found 'wide')"
    assert scan.notes[0].startswith("none of 1 sampled VOC images was found under ")


def test_windows_separators_in_filename(tmp_path):
    root = str(tmp_path)
    _image(os.path.join(root, "JPEGImages", "sub", "a.jpg"))
    _write(os.path.join(root, "Annotations", "a.xml"), _cvat_xml("sub\\a.jpg", (1.5, 1.5, 9.5, 9.5)))
    scan = scan_voc(root)
    assert scan.records[0].image_path == os.path.join(root, "JPEGImages", "sub/a.jpg")
    assert scan.records[0].image_id == "sub/a"
