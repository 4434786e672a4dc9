"""Span roots: numbering, all-at-once adds, windows, and merging spans into one dataset."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from detx.components import storage
from detx.components.data import spans
from detx.components.data.coco import scan_coco
from detx.components.data.scan import DatasetError
from detx.components.data.synth import SynthConfig, write_dataset
from detx.components.data.tfrecord_source import scan_tfrecords


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory):
    """Two COCO deliveries that reuse image ids; the second brings a new class."""
    root = tmp_path_factory.mktemp("deliveries")
    first = write_dataset(str(root / "a"), SynthConfig(num_images=12, seed=1), "coco").out_dir
    second = write_dataset(
        str(root / "b"),
        SynthConfig(num_images=10, seed=2, classes=("circle", "cross"), class_weights=(1, 3)),
        "coco",
    ).out_dir
    return first, second


def test_spans_are_numbered_in_order_and_never_replaced(tmp_path, deliveries):
    root = str(tmp_path / "root")
    assert spans.list_spans(root) == []
    assert spans.add_span(root, deliveries[0]).span == 1
    added = spans.add_span(root, deliveries[1])
    assert (added.span, added.path) == (2, os.path.join(root, "span-2"))
    assert spans.list_spans(root) == [1, 2]
    with pytest.raises(DatasetError, match=r"span 2 already exists.*never replaced"):
        spans.add_span(root, deliveries[0], span=2)
    assert spans.add_span(root, deliveries[0], span=7).span == 7
    assert spans.window(root, None, 2) == [7]  # spans 6 and 7 by number; 6 does not exist
    assert spans.window(root, None, 6) == [2, 7]
    assert spans.window(root, 2, 5) == [1, 2]
    with pytest.raises(DatasetError, match="span 3 is not in"):
        spans.window(root, 3, 1)
    assert sorted(os.listdir(root)) == ["span-1", "span-2", "span-7"]  # nothing else left behind


def test_an_interrupted_add_leaves_no_span_and_no_staging(tmp_path, deliveries, monkeypatch):
    root = str(tmp_path / "root")
    copied = []

    def failing_copy(src, dst, last, on_file=None):
        copied.append(dst)
        os.makedirs(dst)
        open(os.path.join(dst, "half"), "w").close()
        raise OSError("disk full")

    monkeypatch.setattr(storage, "copy_tree", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        spans.add_span(root, deliveries[0])
    assert copied and spans.list_spans(root) == [] and os.listdir(root) == []


def test_merged_spans_keep_old_label_ids_and_qualify_image_ids(tmp_path, deliveries):
    first = scan_coco(os.path.join(deliveries[0], "annotations.json"), os.path.join(deliveries[0], "images"))
    second = scan_coco(os.path.join(deliveries[1], "annotations.json"), os.path.join(deliveries[1], "images"))
    assert second.label_map.names == ("circle", "cross")  # on its own, cross would be label 2
    merged = spans.merge_scans([(1, first), (2, second)])
    assert merged.label_map.names == ("circle", "square", "triangle", "cross")
    assert merged.num_records == 22 and len(merged.records) == 22
    ids = [r.image_id for r in merged.records]
    assert len(set(ids)) == 22  # both deliveries start at image 1; qualified ids do not collide
    assert "span-1/1" in ids and "span-2/1" in ids
    # Each span's category keys resolve to the union's labels by name.
    cross = [b for r in merged.records if r.image_id.startswith("span-2/") for b in r.boxes]
    assert {merged.resolve[b.category] for b in cross} <= {1, 4}
    assert merged.resolve["span-2/12"] == 4 and merged.resolve["span-1/2"] == 1


def test_tfrecord_spans_with_renumbered_classes_are_refused(tmp_path):
    a = write_dataset(str(tmp_path / "a"), SynthConfig(num_images=4, seed=1), "tfrecord").out_dir
    b = write_dataset(
        str(tmp_path / "b"), SynthConfig(num_images=4, seed=2, classes=("square",), class_weights=(1,)), "tfrecord"
    ).out_dir
    c = write_dataset(
        str(tmp_path / "c"),
        SynthConfig(
            num_images=4, seed=3, classes=(*["circle", "square", "triangle"], "cross"), class_weights=(1, 1, 1, 1)
        ),
        "tfrecord",
    ).out_dir
    scans = {k: scan_tfrecords(d, "*.*record*") for k, d in (("a", a), ("b", b), ("c", c))}
    merged = spans.merge_scans([(1, scans["a"]), (2, scans["c"])])  # a new class at the end is fine
    assert merged.label_map.names[-1] == "cross" and set(merged.file_spans.values()) == {1, 2}
    with pytest.raises(DatasetError, match="span-2's label map numbers its classes differently"):
        spans.merge_scans([(1, scans["a"]), (2, scans["b"])])  # square is 1 there, 2 in span 1


def test_add_span_command_checks_reports_new_classes_and_refuses_incompatible_data(tmp_path, deliveries):
    from detx.pipeline.cli import main

    root = str(tmp_path / "root")
    runner = CliRunner()
    result = runner.invoke(main, ["data", "add-span", deliveries[0], "--data", root])
    assert result.exit_code == 0, result.output
    assert "Added span 1" in result.output and "12 images" in result.output
    result = runner.invoke(main, ["data", "add-span", deliveries[1], "--data", root])
    assert result.exit_code == 0, result.output
    assert "Added span 2" in result.output and "(new: cross)" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "annotations.json").write_text(json.dumps({"images": "not a list"}))
    # The form from before one name per idea (--root ROOT --data DELIVERY) still works.
    result = runner.invoke(main, ["data", "add-span", "--root", root, "--data", str(broken)])
    assert result.exit_code != 0 and "Nothing was added" in result.output
    assert spans.list_spans(root) == [1, 2]
