"""`detx review prelabel` and `detx review queue` through the command line: files, table, summary, bad input."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from detx.pipeline.cli import main
from detx.pipeline.cli.review import review_group
from tests.components.review.conftest import BOX, pred, write_case, write_predictions


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return write_case(tmp_path_factory.mktemp("case"))


def _run(*args: str):
    # Through `detx` itself: a group invoked alone caches click's help option without `-h`.
    return CliRunner().invoke(main, [review_group.name, *args], catch_exceptions=False)


def test_prelabel_writes_the_cvat_and_label_studio_files(tmp_path, case):
    out = tmp_path / "prelabels"
    result = _run("prelabel", "--predictions", case["served"], "--images", case["new"], "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["coco_prelabels.json", "label_studio_config.xml", "label_studio_tasks.json"]
    assert result.output.startswith("Pre-labels: 6 images, 6 boxes at 0.3 or more (0 images detx infer skipped")
    coco = json.loads((out / "coco_prelabels.json").read_text())
    assert len(coco["images"]) == 6 and len(coco["annotations"]) == 6
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle", "cross"]
    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    assert sum(len(t["predictions"][0]["result"]) for t in tasks) == 6
    assert '<Label value="cross"/>' in (out / "label_studio_config.xml").read_text()


def test_queue_prints_the_table_and_writes_the_list_and_the_queued_images_files(tmp_path, case):
    out = tmp_path / "queue"
    result = _run(
        "queue", "--predictions", case["served"], "--images", case["new"], "--data", case["spans"],
        "--top", "3", "--out", str(out), "--url-prefix", "https://bucket.example/new/",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "priority", "file", "reason"]
    assert lines[1].split()[:3] == ["1", "1.00", "ambiguous.jpg"]
    assert lines[2].split()[:3] == ["2", "1.00", "never.jpg"] and "predicts cross, 0 of 41 labelled boxes" in lines[2]
    assert "Queued 3 of 6 images; left out 1 near-duplicates of labelled images" in result.stdout
    assert "hashed 6/6 labelled images" in result.stderr  # progress goes to stderr
    queued = [json.loads(line) for line in (out / "queue.jsonl").read_text().splitlines()]
    assert [q["file"] for q in queued] == ["ambiguous.jpg", "never.jpg", "sub/rare.jpg"]
    assert [q["rank"] for q in queued] == [1, 2, 3]
    assert queued[2]["reasons"][0]["kind"] == "rare_class"
    [left_out] = [json.loads(line) for line in (out / "left_out.jsonl").read_text().splitlines()]
    assert left_out["file"] == "again.jpg" and left_out["reason"] == "near_duplicate"
    assert left_out["labelled_image"] == "span-1/1"
    coco = json.loads((out / "coco_prelabels.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["ambiguous.jpg", "never.jpg", "sub/rare.jpg"]
    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks][1] == "https://bucket.example/new/never.jpg"


def test_queue_with_compare_ranks_by_disagreement(tmp_path, case):
    candidate = [p for p in case["predictions"] if p.file != "confident.jpg"]
    candidate.append(pred("confident.jpg", ("square", 0.95, BOX)))  # the candidate calls it another class
    compare = write_predictions(tmp_path / "candidate", candidate)
    result = _run(
        "queue", "--predictions", case["served"], "--images", case["new"], "--compare", compare,
        "-k", "2", "--out", str(tmp_path / "q"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    queued = [json.loads(line) for line in (tmp_path / "q" / "queue.jsonl").read_text().splitlines()]
    assert queued[0]["file"] == "ambiguous.jpg"
    assert queued[1]["file"] == "confident.jpg"
    assert queued[1]["reasons"][0]["text"] == "models agree on 0 of 2 detections (1 only served, 1 only candidate)"


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["--predictions", "{tmp}/nowhere"], 1, "is not a folder; give the --out folder of detx infer"),
        (["-k", "0"], 2, "Invalid value for '-k' / '--top': 0 is not in the range x>=1"),
        (["--predictions", "{tmp}/other"], 1, "other/predictions-00000-of-00001.jsonl:1 is not a detx infer"),
        (["--compare", "{tmp}/nowhere"], 1, "is not a folder"),
    ],
)
def test_bad_input_gives_a_clear_error_and_writes_nothing(tmp_path, case, args, code, message):
    other = tmp_path / "other"
    other.mkdir()
    # `detx predict`'s JSON lines: another format.
    (other / "predictions-00000-of-00001.jsonl").write_text('{"image": "a.jpg", "model": "detx", "detections": []}\n')
    out = tmp_path / "out"
    defaults = {"--predictions": case["served"], "-k": "2"}
    given = [a.format(tmp=tmp_path) for a in args]
    for flag, value in defaults.items():
        if flag not in given:
            given += [flag, value]
    result = _run("queue", "--images", case["new"], "--out", str(out), *given)
    assert result.exit_code == code, result.output
    assert message in result.output
    if code == 1:
        assert "Nothing was written." in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_an_out_folder_with_files_is_refused(tmp_path, case):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    result = _run("prelabel", "--predictions", case["served"], "--images", case["new"], "--out", str(out))
    assert result.exit_code == 1
    assert "already holds files; give a new folder" in result.output
    assert os.listdir(out) == ["mine.txt"]


def test_a_finished_detx_infer_run_names_its_images_and_classes_and_an_unfinished_one_is_refused(tmp_path, case):
    from detx.components.batch_inference.listing import MANIFEST
    from detx.components.batch_inference.outputs import COCO_IMAGES, SUMMARY

    run = tmp_path / "run"
    shutil.copytree(case["served"], run)
    (run / MANIFEST).write_text("{}")
    result = _run("prelabel", "--predictions", str(run), "--out", str(tmp_path / "a"))
    assert result.exit_code == 1
    assert "is an unfinished detx infer run (it has job.json but no summary.json); run the same" in result.output
    (run / SUMMARY).write_text(json.dumps({"input_root": case["new"], "images": 6}))
    model_classes = [{"id": i, "name": n, "supercategory": "none"} for i, n in enumerate(["circle", "square"], 1)]
    model_classes += [{"id": 3, "name": "triangle"}, {"id": 4, "name": "cross"}, {"id": 5, "name": "star"}]
    (run / COCO_IMAGES).write_text(json.dumps({"images": [], "annotations": [], "categories": model_classes}))
    result = _run("prelabel", "--predictions", str(run), "--out", str(tmp_path / "b"))  # no --images
    assert result.exit_code == 0, result.output
    coco = json.loads((tmp_path / "b" / "coco_prelabels.json").read_text())
    # Every class of the model, predicted or not, so a reviewer can draw any of them.
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle", "cross", "star"]
    assert coco["images"][0]["coco_url"] == "file://" + os.path.join(case["new"], "again.jpg")
    result = _run("prelabel", "--predictions", case["served"], "--out", str(tmp_path / "c"))
    assert result.exit_code == 1 and "does not name the images it scored (no summary.json); give --images" in (
        result.output
    )


def test_a_wrong_images_folder_is_named(tmp_path, case):
    result = _run(
        "queue", "--predictions", case["served"], "--images", str(tmp_path), "--data", case["spans"],
        "-k", "2", "--out", str(tmp_path / "q"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"none of the predicted images could be read under {tmp_path} (e.g. ambiguous.jpg)" in result.output
    assert not (tmp_path / "q").exists()
