"""Predicted -> pre-labelled -> edited as a reviewer would -> exported by the tool -> a span -> ct check -> training.

The predictions come from a real SavedModel run directly (the oracle detector of
testing/evaluation.py: its boxes are the images' own, jittered, with
scores 0.3-1.0, so there are pre-labels worth editing; a random-weight detx
export scores every box 0.01). Label Studio's side goes through
label_studio_converter's COCO export, the code Label Studio's own export runs,
with the images served over HTTP; CVAT's side is its "COCO 1.0" export layout
(`annotations/instances_default.json`, `images/<frame name>`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import http.server
import json
import os
import shutil
import threading

import numpy as np
import portpicker
import pytest
import tensorflow as tf
from click.testing import CliRunner
from label_studio_converter import Converter

from detx.components.batch_inference.records import BoxPrediction, ImagePrediction
from detx.components.data import features as F
from detx.components.data import spans
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.records import Converted, DataLimits, build_example
from detx.components.data.sources import scan_window
from detx.components.data.synth import SynthConfig, generate, label_map, od_api_example, write_dataset
from detx.components.evaluation.detections import Detections
from detx.components.model_store import TRAIN_STATS_FILENAME, ModelStore
from detx.components.modeling.config import preset
from detx.components.trainer import data, train
from detx.pipeline.cli import main
from detx.pipeline.cli.ct import ct_group
from detx.pipeline.cli.data import data_group
from detx.pipeline.cli.options import default_of
from detx.pipeline.cli.review import review_group
from detx.pipeline.config import DataConfig
from detx.pipeline.ct import stats
from detx.pipeline.ct.staleness import eval_selector
from testing.evaluation import write_oracle_model
from tests.components.review.conftest import write_predictions

IMAGE = dict(width=128, height=96, min_size=24, max_size=48, empty_fraction=0.0, max_objects=3)
NEW_IMAGES = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Span 1, a served version trained on it, new images and the served version's predictions of them."""
    tmp = tmp_path_factory.mktemp("world")
    root = str(tmp / "spans")
    labelled = write_dataset(str(tmp / "labelled"), SynthConfig(num_images=12, seed=1, **IMAGE), "coco")
    spans.add_span(root, labelled.out_dir)

    new = tmp / "new"
    new.mkdir()
    names = label_map().names
    oracle = write_oracle_model(str(tmp / "oracle"), jitter=0.02, false_positives=1)
    label_map().write(os.path.join(oracle, "assets", "label_map.pbtxt"))
    detect = tf.saved_model.load(oracle).signatures["tf_example"]
    images = list(generate(SynthConfig(num_images=NEW_IMAGES, seed=2, first_id=101, **IMAGE)))
    outputs = detect(examples=tf.constant([od_api_example(i).SerializeToString() for i in images]))
    predictions = []
    for index, image in enumerate(images):
        (new / f"img-{image.image_id}.jpg").write_bytes(image.jpeg)
        d = Detections.from_outputs(outputs, index)
        boxes = tuple(
            BoxPrediction(names[int(c) - 1], int(c), float(s), tuple(float(v) for v in b))  # type: ignore[arg-type]
            for b, c, s in zip(d.boxes, d.classes, d.scores, strict=True)
        )
        predictions.append(ImagePrediction(f"img-{image.image_id}.jpg", image.width, image.height, boxes))
    served = write_predictions(tmp / "served", predictions)

    reference = stats.span_statistics(root, [1], IngestOptions(data_format="coco", span_window=1)).statistics
    destination = str(tmp / "models" / "detx")
    lineage = {"data": {"source": root, "spans": [1]}, "metrics": {}}
    ModelStore(destination).push(oracle, lineage, extra_files={TRAIN_STATS_FILENAME: reference.SerializeToString()})
    return {"tmp": tmp, "root": root, "new": str(new), "served": served, "destination": destination}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_images(world):
    """The new images over HTTP, as a bucket or web server would give them to Label Studio."""
    port = portpicker.pick_unused_port()
    handler = functools.partial(_QuietHandler, directory=world["new"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/"
    server.shutdown()
    server.server_close()


def _cli(group, *args: str) -> str:
    # Through `detx` itself: a group invoked alone caches click's help option without `-h`.
    result = CliRunner().invoke(main, [group.name, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _edit(boxes: list, move, add) -> list:
    """A reviewer's edits: moves the first box, deletes the second, adds one."""
    edited = copy.deepcopy(boxes)
    move(edited[0])
    del edited[1]
    edited.append(add)
    return edited


def _label_studio_export(world, prelabels, tmp) -> tuple[str, dict]:
    """Reviewed tasks exported as Label Studio's COCO export writes them (label_studio_converter)."""
    tasks = json.loads((prelabels / "label_studio_tasks.json").read_text())
    task = next(t for t in tasks if len(t["predictions"][0]["result"]) >= 2)

    def move(r):
        r["value"]["x"] = max(r["value"]["x"] - 5.0, 0.0)  # 5% of the width to the left

    added = copy.deepcopy(task["predictions"][0]["result"][0]) | {"id": "new"}
    added["value"] = {"x": 2.0, "y": 3.0, "width": 20.0, "height": 25.0, "rotation": 0, "rectanglelabels": ["square"]}
    reviewed = []
    for number, t in enumerate(tasks, start=1):
        result = [{k: v for k, v in r.items() if k != "score"} for r in t["predictions"][0]["result"]]
        if t is task:
            result = _edit(result, move, added)
        # What Label Studio exports: the task (with the id it gave it) and the reviewer's annotation.
        reviewed.append(t | {"id": number, "annotations": [{"id": number, "result": result, "was_cancelled": False}]})
    path = tmp / "reviewed_tasks.json"
    path.write_text(json.dumps(reviewed))
    export = tmp / "label_studio_export"
    config = (prelabels / "label_studio_config.xml").read_text()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        Converter(config, project_dir=str(tmp)).convert_to_coco(str(path), str(export), is_dir=False)
    edited = next(r for r in reviewed if r["id"] == tasks.index(task) + 1)["annotations"][0]["result"]
    return str(export), {"file": task["data"]["detx_file"], "result": edited}


def _cvat_export(world, prelabels, tmp) -> tuple[str, dict]:
    """The pre-labels imported, edited and exported as CVAT's "COCO 1.0" (Datumaro's coco_instances layout)."""
    coco = json.loads((prelabels / "coco_prelabels.json").read_text())
    per_image = {}
    for a in coco["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    image_id = max(per_image, key=lambda i: (len(per_image[i]) >= 2, -i))  # the last image with two boxes or more
    image = next(i for i in coco["images"] if i["id"] == image_id)

    def move(a):
        a["bbox"][1] = max(a["bbox"][1] - 4.0, 0.0)  # 4 pixels up

    added = {"id": 0, "image_id": image_id, "category_id": 3, "bbox": [90.0, 60.0, 30.0, 30.0]}
    added |= {"iscrowd": 0, "segmentation": [], "area": 900.0}
    edited = _edit(per_image[image_id], move, added)
    annotations = [a for a in coco["annotations"] if a["image_id"] != image_id] + edited
    for n, a in enumerate(annotations, start=1):
        a.update(id=n, attributes={"occluded": False})
    export = tmp / "cvat_export"
    (export / "annotations").mkdir(parents=True)
    (export / "images").mkdir()
    for i in coco["images"]:
        shutil.copy(os.path.join(world["new"], i["file_name"]), export / "images" / i["file_name"])
    doc = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {},
        "categories": coco["categories"],
        "images": [{k: v for k, v in i.items() if k != "coco_url"} for i in coco["images"]],
        "annotations": annotations,
    }
    (export / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    return str(export), {"file": image["file_name"], "result": edited}


def _text(example: tf.train.Example, key: str) -> str:
    return example.features.feature[key].bytes_list.value[0].decode()


def _corners(x: float, y: float, w: float, h: float, width: float, height: float) -> tuple[float, ...]:
    """Normalized (xmin, ymin, xmax, ymax), clipped at the image's far edges as ingestion clips them."""
    return tuple(round(v, 3) for v in (x / width, y / height, min((x + w) / width, 1.0), min((y + h) / height, 1.0)))


def _boxes(example: tf.train.Example) -> list[tuple[str, tuple[float, ...]]]:
    f = example.features.feature
    names = [t.decode() for t in f[F.TEXT].bytes_list.value]
    keys = (F.XMIN, "image/object/bbox/ymin", "image/object/bbox/xmax", "image/object/bbox/ymax")
    corners = zip(*(f[k].float_list.value for k in keys), strict=True)
    return sorted((n, tuple(round(v, 3) for v in c)) for n, c in zip(names, corners, strict=True))


@pytest.mark.slow  # trains (2 steps of the tiny preset): left out of `make test-fast`, as the other learning tests
def test_reviewed_pre_labels_come_back_as_spans_that_ct_check_sees_and_training_reads(world, http_images, tmp_path):
    prelabels = tmp_path / "prelabels"
    out = _cli(
        review_group,
        "prelabel",
        "--predictions",
        world["served"],
        "--images",
        world["new"],
        "--out",
        str(prelabels),
        "--url-prefix",
        http_images,
        "--min-score",
        "0.3",
    )
    assert f"Pre-labels: {NEW_IMAGES} images" in out

    ls_export, ls_edit = _label_studio_export(world, prelabels, tmp_path)
    assert sorted(os.listdir(ls_export)) == ["images", "result.json"]
    cvat_export, cvat_edit = _cvat_export(world, prelabels, tmp_path)

    added = _cli(data_group, "add-span", ls_export, "--data", world["root"])
    assert f"Added span 2 to {world['root']}: {NEW_IMAGES} images, 0 rejected" in added
    added = _cli(data_group, "add-span", cvat_export, "--data", world["root"])
    assert f"Added span 3 to {world['root']}: {NEW_IMAGES} images, 0 rejected" in added

    decision = json.loads(
        _cli(
            ct_group,
            "check",
            "--json",
            "--data",
            world["root"],
            "--push-destination",
            world["destination"],
            "--project",
            str(tmp_path / "project"),
            "--span-window",
            "3",
            "--min-new-images",
            "5",
        )
    )
    assert decision["new_spans"] == [2, 3] and decision["window"] == [1, 2, 3]
    assert f"spans 2-3: {2 * NEW_IMAGES} new images (at least 5)" in decision["reasons"]

    # The examples a retraining reads: the window's records converted as ingestion converts them, train split only.
    scan = scan_window(IngestOptions(data_format="auto", span_window=3), world["root"], [1, 2, 3])
    is_eval = eval_selector(default_of(DataConfig, "splits"))
    examples = {}
    for record in scan.records:
        converted = build_example(record, scan.resolve, scan.label_map, DataLimits())
        assert isinstance(converted, Converted), converted
        examples[record.image_id] = converted.example
    train_dir = tmp_path / "examples" / "Split-train"
    train_dir.mkdir(parents=True)
    train_ids = [i for i, e in examples.items() if not is_eval(e)]
    with tf.io.TFRecordWriter(str(train_dir / "data_tfrecord-00000-of-00001.gz"), "GZIP") as writer:
        for i in train_ids:
            writer.write(examples[i].SerializeToString())

    # The edits are in the examples, as the reviewer left them.
    by_file = {(i.split("/")[0], os.path.basename(_text(e, F.FILENAME))): e for i, e in examples.items()}
    ls_example = by_file[("span-2", ls_edit["file"])]
    want = sorted(
        (r["value"]["rectanglelabels"][0], _corners(*(r["value"][k] for k in ("x", "y", "width", "height")), 100, 100))
        for r in ls_edit["result"]
    )
    assert _boxes(ls_example) == want
    cvat_example = by_file[("span-3", cvat_edit["file"])]
    names = dict(enumerate(label_map().names, start=1))
    want = sorted((names[a["category_id"]], _corners(*a["bbox"], 128, 96)) for a in cvat_edit["result"])
    assert _boxes(cvat_example) == want

    # Training reads the new spans' examples: a tiny-preset run of 2 steps on exactly these files.
    new_in_train = [i for i in train_ids if i.startswith(("span-2/", "span-3/"))]
    assert new_in_train, "no new example fell in the train split"
    model_config, train_config = preset("tiny")
    train_config = dataclasses.replace(train_config, batch_size=4, train_steps=2, checkpoint_every=2, shuffle_buffer=8)
    pattern = str(train_dir / "*")
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
    read = [_text(tf.train.Example.FromString(r.numpy()), F.SOURCE_ID) for r in records]
    assert set(new_in_train) <= set(read)
    result = train.train(
        lambda b: data.make_dataset(pattern, model_config, train_config, batch_size=b),
        model_config,
        train_config,
        scan.label_map.num_classes,
        str(tmp_path / "run"),
        log=lambda _: None,
    )
    assert result.steps == 2 and np.isfinite(result.history["loss"]).all()
