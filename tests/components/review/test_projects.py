"""The pre-label files parse as the tools' published formats: pycocotools for CVAT's COCO, Label Studio's converter."""

from __future__ import annotations

import json

import label_studio_converter.utils as ls_utils
import pytest
from label_studio_converter import Converter
from pycocotools.coco import COCO

from detx.components.batch_inference.records import BoxPrediction, ImagePrediction
from detx.components.review import output, projects
from detx.components.review.predictions import ReviewError
from tests.components.review.conftest import noise_image, pred, write_image

SIZE = (120, 80)  # width, height: not square, so x/y mix-ups show


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    files = ["a.jpg", "sub/b c.jpg", "empty.jpg"]
    for i, name in enumerate(files):
        write_image(root / name, noise_image(i, size=SIZE))
    preds = [
        pred("a.jpg", ("circle", 0.9, (0.1, 0.25, 0.5, 0.75)), ("square", 0.2, (0, 0, 1, 1)), size=SIZE),
        pred("sub/b c.jpg", ("triangle", 0.6, (0.5, 0.5, 1.2, 1.0)), size=SIZE),  # past the edge: clipped
        pred("empty.jpg", ("circle", 0.05, (0.1, 0.1, 0.2, 0.2)), size=SIZE),
    ]
    return str(root), preds


def test_the_coco_file_loads_in_pycocotools_with_pixel_boxes_and_consistent_ids(tmp_path, predictions):
    root, preds = predictions
    classes = projects.categories(preds)
    assert classes == [(1, "circle"), (2, "square"), (3, "triangle")]
    doc = projects.coco_document(preds, projects.ImageSource(root), 0.3, classes)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"circle", "square", "triangle"}
    assert [img["file_name"] for img in coco.loadImgs([1, 2, 3])] == ["a.jpg", "sub/b c.jpg", "empty.jpg"]
    assert coco.loadImgs(2)[0]["coco_url"].startswith("file://") and "sub/b%20c.jpg" in coco.loadImgs(2)[0]["coco_url"]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 2  # the 0.2 square and the 0.05 circle are under --min-score
    assert all(a["image_id"] in coco.imgs and a["category_id"] in coco.cats for a in anns)
    a, b = sorted(anns, key=lambda x: x["image_id"])
    # (ymin, xmin, ymax, xmax) = (0.1, 0.25, 0.5, 0.75) of 120x80 -> x 30, y 8, w 60, h 32
    assert a["bbox"] == [30.0, 8.0, 60.0, 32.0] and a["area"] == 1920.0 and a["category_id"] == 1
    assert b["bbox"] == [60.0, 40.0, 60.0, 40.0]  # clipped at the bottom edge
    assert len(coco.getAnnIds(imgIds=[3])) == 0


def test_label_studio_tasks_parse_with_the_converter_and_give_the_same_boxes(tmp_path, predictions, monkeypatch):
    root, preds = predictions
    classes = projects.categories(preds)
    tasks = projects.label_studio_tasks(preds, projects.ImageSource(root), 0.3, "detx-v3")
    config = projects.label_studio_config([n for _, n in classes])
    parsed = ls_utils.parse_config(config)
    assert parsed["label"]["type"] == "RectangleLabels"
    assert parsed["label"]["to_name"] == ["image"]
    assert parsed["label"]["inputs"] == [{"type": "Image", "value": "image"}]
    assert parsed["label"]["labels"] == ["circle", "square", "triangle"]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=a.jpg"
    assert tasks[1]["data"]["image"] == "/data/local-files/?d=sub/b%20c.jpg"
    first = tasks[0]["predictions"][0]
    assert first["model_version"] == "detx-v3" and first["score"] == pytest.approx(0.9)
    [result] = first["result"]
    assert result["type"] == "rectanglelabels" and result["from_name"] == "label" and result["to_name"] == "image"
    assert (result["original_width"], result["original_height"]) == SIZE
    assert result["value"]["rectanglelabels"] == ["circle"]
    assert [result["value"][k] for k in ("x", "y", "width", "height")] == pytest.approx([25, 10, 50, 40])
    assert tasks[2]["predictions"][0]["result"] == []

    # A reviewer who accepts every pre-annotation makes annotations equal to the predictions
    # (Label Studio copies a prediction's result into the new annotation); the converter Label Studio's
    # COCO export uses must read them back to the boxes of the COCO file.
    # Label Studio numbers tasks on import; its export carries the ids.
    accepted = [
        t | {"id": i, "annotations": [{"result": t["predictions"][0]["result"]}]} for i, t in enumerate(tasks, 1)
    ]
    tasks_path = tmp_path / "tasks.json"
    tasks_path.write_text(json.dumps(accepted))
    # Label Studio serves `/data/local-files/?d=` from LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: here, the images.
    monkeypatch.setattr(ls_utils, "LOCAL_FILES_DOCUMENT_ROOT", root)
    Converter(config, project_dir=str(tmp_path)).convert_to_coco(
        str(tasks_path), str(tmp_path / "export"), is_dir=False
    )
    exported = json.loads((tmp_path / "export" / "result.json").read_text())
    names = {c["id"]: c["name"] for c in exported["categories"]}
    got = sorted((names[a["category_id"]], [round(v, 3) for v in a["bbox"]]) for a in exported["annotations"])
    ours = projects.coco_document(preds, projects.ImageSource(root), 0.3, classes)
    ours_names = dict(classes)
    want = sorted((ours_names[a["category_id"]], a["bbox"]) for a in ours["annotations"])
    assert got == want
    assert [i["width"] for i in exported["images"]] == [SIZE[0]] * 3


def test_a_url_prefix_addresses_the_images_in_both_files(predictions):
    root, preds = predictions
    source = projects.ImageSource(root, "https://bucket.example/new/")
    tasks = projects.label_studio_tasks(preds, source, 0.3, "detx")
    assert tasks[1]["data"]["image"] == "https://bucket.example/new/sub/b%20c.jpg"
    doc = projects.coco_document(preds, source, 0.3, projects.categories(preds))
    assert doc["images"][1]["coco_url"] == "https://bucket.example/new/sub/b%20c.jpg"
    assert doc["images"][1]["file_name"] == "sub/b c.jpg"  # CVAT matches the task's own image names


def test_two_label_maps_are_refused_and_the_folder_is_written_all_at_once(tmp_path):
    disc = ImagePrediction("b.jpg", 9, 9, (BoxPrediction("disc", 1, 0.9, (0, 0, 1, 1)),))
    clash = [pred("a.jpg", ("circle", 0.9, (0, 0, 1, 1))), disc]
    with pytest.raises(ValueError, match="class id 1 is both 'circle' and 'disc'"):
        projects.categories(clash)
    out = tmp_path / "out"
    written = output.write_folder(str(out), {"x.json": "{}", "y.xml": "<View/>"})
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["x.json", "y.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left behind
    with pytest.raises(ReviewError, match="already holds files; give a new folder"):
        output.write_folder(str(out), {"z.json": "{}"})
    assert sorted(p.name for p in out.iterdir()) == ["x.json", "y.xml"]
