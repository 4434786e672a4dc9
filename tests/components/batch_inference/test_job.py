"""The batch-inference Beam job on real images with a real SavedModel (Beam's in-process engine, two workers)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from detx.components.batch_inference import job, listing, outputs
from detx.components.batch_inference.model import ModelRef
from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.batch_inference.records import ImagePrediction, SkippedImage
from tests.components.batch_inference.conftest import BIG, CORRUPT, MAX_PIXELS, NOT_AN_IMAGE, ROTATED

BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=multi_threading", "--direct_num_workers=2"]
OPTIONS = BulkInferenceOptions(batch_size=4, shard_size=5, max_pixels=MAX_PIXELS)


@pytest.fixture(scope="module")
def finished(tiny_model: str, image_root: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, list[str]]:
    """One job over the image folder: (out dir, summary, printed lines)."""
    out = str(tmp_path_factory.mktemp("out"))
    lines: list[str] = []
    summary = job.run(image_root, out, ModelRef(tiny_model, None), OPTIONS, BEAM_ARGS, echo=lines.append)
    return out, summary, lines


def _predictions(out: str) -> dict[str, ImagePrediction]:
    found = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("predictions-"):
            with open(os.path.join(out, name)) as f:
                found.update({p.file: p for p in (ImagePrediction.from_json(line) for line in f)})
    return found


def test_results_equal_the_savedmodels_own_answers(finished, tiny_model: str, image_root: str) -> None:
    out, _, _ = finished
    predictions = _predictions(out)
    model = tf.saved_model.load(tiny_model)
    # The model's own path: its `encoded_image` signature decodes the file's bytes in the graph and
    # applies the EXIF orientation itself, one image per call.
    for rel, p in predictions.items():
        with open(os.path.join(image_root, rel), "rb") as f:
            data = tf.constant([f.read()])
        answer = {k: v.numpy()[0] for k, v in model.signatures["encoded_image"](encoded_image=data).items()}
        n = int(answer["num_detections"])
        assert len(p.detections) == n > 0
        got = p.as_detections()
        np.testing.assert_array_equal(got.classes, answer["detection_classes"][:n].astype(np.int64))
        np.testing.assert_allclose(got.scores, answer["detection_scores"][:n], atol=1e-5)
        np.testing.assert_allclose(got.boxes, answer["detection_boxes"][:n], atol=1e-4)
        assert {d.label for d in p.detections} <= {"circle", "square", "triangle"}
    assert (predictions[ROTATED].width, predictions[ROTATED].height) == (40, 60)  # upright, as people see it


def test_bad_images_are_listed_with_reasons_and_counted(finished) -> None:
    out, summary, lines = finished
    with open(os.path.join(out, outputs.SKIPPED)) as f:
        skipped = {s.file: s.reason for s in map(SkippedImage.from_json, f)}
    assert sorted(skipped) == sorted([BIG, CORRUPT, NOT_AN_IMAGE])
    assert skipped[BIG].startswith("too large:") and "raise max_pixels" in skipped[BIG]
    assert skipped[CORRUPT].startswith("corrupt or truncated:")
    assert skipped[NOT_AN_IMAGE].startswith("not an image:")
    assert (summary["images"], summary["scored"], summary["skipped"]) == (20, 17, 3)
    assert summary["skipped_by_reason"] == {"corrupt or truncated": 1, "not an image": 1, "too large": 1}
    assert summary["shards"] == summary["shards_run"] == 4 and summary["shards_reused"] == 0
    assert "Scored 17 of 20 images" in lines[-1] and "skipped 3" in lines[-1]
    assert any("shards 4/4 done" in line for line in lines)
    with open(os.path.join(out, outputs.SUMMARY)) as f:
        assert json.load(f)["scored"] == 17


def test_coco_results_load_with_pycocotools(finished) -> None:
    from pycocotools.coco import COCO

    out, summary, _ = finished
    ground = COCO(os.path.join(out, outputs.COCO_IMAGES))
    results = ground.loadRes(os.path.join(out, outputs.COCO_RESULTS))
    assert len(results.getAnnIds()) == summary["detections"]
    assert {c["name"] for c in ground.loadCats(ground.getCatIds())} == {"circle", "square", "triangle"}
    # The first detection of the rotated photo, in pixels of the upright image.
    image = next(i for i in ground.dataset["images"] if i["file_name"] == ROTATED)
    best = _predictions(out)[ROTATED].detections[0]
    ann = max(results.loadAnns(results.getAnnIds(imgIds=[image["id"]])), key=lambda a: a["score"])
    ymin, xmin, ymax, xmax = best.box
    np.testing.assert_allclose(ann["bbox"], [xmin * 40, ymin * 60, (xmax - xmin) * 40, (ymax - ymin) * 60], atol=0.01)
    assert ann["category_id"] == best.class_id


def test_a_finished_job_runs_nothing_again(finished, tiny_model: str, image_root: str, tmp_path) -> None:
    out, _, _ = finished
    copy = str(tmp_path / "out")
    shutil.copytree(out, copy)
    before = {n: os.stat(os.path.join(copy, n)).st_mtime_ns for n in os.listdir(copy) if n.startswith("predictions-")}
    lines: list[str] = []
    summary = job.run(image_root, copy, ModelRef(tiny_model, None), OPTIONS, BEAM_ARGS, echo=lines.append)
    assert (summary["shards_run"], summary["shards_reused"], summary["scored"]) == (0, 4, 17)
    after = {n: os.stat(os.path.join(copy, n)).st_mtime_ns for n in before}
    assert after == before
    assert "4 shards already done, 0 to go" in lines[0]


def test_another_job_in_the_output_folder_is_refused(finished, tiny_model: str, image_root: str, tmp_path) -> None:
    out, _, _ = finished
    copy = str(tmp_path / "out")
    shutil.copytree(out, copy)
    other = BulkInferenceOptions(batch_size=4, shard_size=5, max_pixels=MAX_PIXELS, min_score=0.5)
    with pytest.raises(listing.InferenceError, match=r"min_score: 0\.0 there, 0\.5 now.*--overwrite.*new --out"):
        job.run(image_root, copy, ModelRef(tiny_model, None), other, BEAM_ARGS)
    os.remove(os.path.join(copy, listing.MANIFEST))
    with pytest.raises(listing.InferenceError, match=r"predictions but no job\.json.*--overwrite"):
        job.run(image_root, copy, ModelRef(tiny_model, None), OPTIONS, BEAM_ARGS)


def test_an_empty_folder_is_refused(tiny_model: str, tmp_path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(listing.InferenceError, match=r"no images \(\.jpg, .*\) under .*right folder"):
        job.run(str(tmp_path / "in"), str(tmp_path / "out"), ModelRef(tiny_model, None), OPTIONS, BEAM_ARGS)


def test_shards_are_fixed_pieces_of_the_sorted_listing(image_root: str) -> None:
    files = listing.list_images(image_root)
    assert files == sorted(files) and len(files) == 20 and "README.txt" not in files
    shards = listing.make_shards(files, 6)
    assert [len(s.files) for s in shards] == [6, 6, 6, 2]
    assert [s.first_id for s in shards] == [0, 6, 12, 18] and shards[3].name == "00003-of-00004"
    assert [f for s in shards for f in s.files] == files
