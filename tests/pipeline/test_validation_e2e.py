"""The validation part of the pipeline, run for real with LocalDagRunner, Beam and SQLite ML Metadata."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from detx.components.data.records import Reject
from detx.components.data.synth import SynthConfig, write_dataset
from detx.components.data_gate.executor import DataGateFailed
from detx.components.example_gen.report import QUARANTINE_FILENAME, SUMMARY_FILENAME, QuarantineLimitExceeded
from detx.pipeline.cli import main
from detx.pipeline.config import DataConfig, PipelineConfig, Stage
from detx.pipeline.local_runner import PipelineRunFailed, run_local
from detx.pipeline.project import ProjectPaths
from detx.pipeline.run_report import latest_run, split_counts
from testing.data import (
    CONVERTED_FAULTS,
    FAULT_MAX_PIXELS,
    REJECTED_FAULTS,
    add_crowded_tfrecord,
    inject_coco_faults,
)

pytestmark = pytest.mark.e2e


def _run(data: DataConfig, project: str) -> list:
    run_local(PipelineConfig(data=data, stop_after=Stage.VALIDATION), project, echo=lambda _: None)
    return latest_run(ProjectPaths(project).metadata_path, "detx")


def _output(runs, node, key):
    return next(r.outputs[key][0] for r in runs if r.node == node)


@pytest.fixture(scope="module")
def format_runs(small_datasets, tmp_path_factory):
    root = tmp_path_factory.mktemp("projects")
    return {
        # No format given: --format auto's default, detected by the ExampleGen.
        fmt: (_run(DataConfig(path=path), str(root / fmt)), str(root / fmt))
        for fmt, path in small_datasets.items()
    }


def test_every_component_ran_and_the_gate_passed(format_runs):
    for runs, _ in format_runs.values():
        assert [(r.node, r.state) for r in runs] == [
            ("DetectionExampleGen", "complete"),
            ("DetectionSchemaGen", "complete"),
            ("StatisticsGen", "complete"),
            ("ExampleValidator", "complete"),
            ("DataGate", "complete"),
        ]


def test_each_format_was_detected_and_the_summary_says_so(format_runs):
    for fmt, (runs, _) in format_runs.items():
        with open(os.path.join(_output(runs, "DetectionExampleGen", "examples"), SUMMARY_FILENAME)) as f:
            summary = json.load(f)
        assert summary["data_format"] == fmt
        # A local run reads with the pattern of the files auto found there (local_runner.resolve_local).
        assert summary["source_notes"][0].startswith(f"--format auto: read {summary['input_base']} as {fmt}")


def test_four_formats_give_the_same_examples_and_boxes(format_runs):
    counts = {fmt: split_counts(_output(runs, "StatisticsGen", "statistics")) for fmt, (runs, _) in format_runs.items()}
    totals = {fmt: (sum(c.num_examples for c in cs), sum(c.num_boxes for c in cs)) for fmt, cs in counts.items()}
    assert len(set(totals.values())) == 1, totals
    assert totals["coco"][0] == 40 and totals["coco"][1] > 40
    # VOC, YOLO and TFRecord copies share image ids (file stems), so even the hash split agrees.
    assert counts["voc"] == counts["tfrecord"] == counts["yolo"]
    per_class = {
        fmt: {k: sum(c.boxes_per_class.get(k, 0) for c in cs) for k in ("circle", "square", "triangle")}
        for fmt, cs in counts.items()
    }
    assert per_class["coco"] == per_class["voc"] == per_class["tfrecord"] == per_class["yolo"]
    assert {c.split for c in counts["coco"]} == {"train", "eval"}


def test_label_map_and_reports_travel_with_the_examples(format_runs):
    runs, _ = format_runs["coco"]
    examples = _output(runs, "DetectionExampleGen", "examples")
    with open(os.path.join(examples, "label_map.pbtxt")) as f:
        assert 'name: "triangle"' in f.read()
    with open(os.path.join(examples, SUMMARY_FILENAME)) as f:
        summary = json.load(f)
    assert summary["category_ids"] == {"2": 1, "5": 2, "9": 3}  # COCO's sparse ids, renumbered
    assert summary["num_rejected"] == 0 and summary["num_examples"] == 40
    assert open(os.path.join(examples, QUARANTINE_FILENAME)).read() == ""
    schema = open(os.path.join(_output(runs, "DetectionSchemaGen", "schema"), "schema.pbtxt")).read()
    assert 'value: "circle"' in schema and "max: 3" in schema


def test_a_second_run_is_served_from_the_cache(format_runs, small_datasets):
    _, project = format_runs["coco"]
    runs = _run(DataConfig(path=small_datasets["coco"]), project)  # the same command again
    assert {r.state for r in runs} == {"cached"}


@pytest.fixture(scope="module")
def faulty_coco(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("faulty") / "coco")
    write_dataset(path, SynthConfig(num_images=60, seed=11), "coco")
    applied = inject_coco_faults(path, [*REJECTED_FAULTS, *CONVERTED_FAULTS])
    return path, applied


def test_bad_records_under_the_limit_are_quarantined_and_the_run_goes_on(faulty_coco, tmp_path):
    path, applied = faulty_coco
    data = DataConfig(path=path, format="coco", max_rejected_fraction=0.3, max_pixels=FAULT_MAX_PIXELS)
    runs = _run(data, str(tmp_path / "p"))
    assert runs[-1].node == "DataGate" and runs[-1].state == "complete"
    examples = _output(runs, "DetectionExampleGen", "examples")
    with open(os.path.join(examples, QUARANTINE_FILENAME)) as f:
        rejects = [Reject.from_json(line) for line in f]
    found = {(r.image_id, r.reason.value) for r in rejects}
    for fault, reason in REJECTED_FAULTS.items():
        assert (applied[fault], reason) in found, fault
    assert all(r.detail and r.file for r in rejects)
    # The duplicate id quarantines both copies; every other fault exactly one record.
    assert len(rejects) == len(REJECTED_FAULTS) + 1
    summary = json.load(open(os.path.join(examples, SUMMARY_FILENAME)))
    assert summary["num_records"] == 61 and summary["num_examples"] == 61 - len(rejects)
    assert summary["conversions"] == {v: 1 for v in CONVERTED_FAULTS.values() if v}
    counts = split_counts(_output(runs, "StatisticsGen", "statistics"))
    assert sum(c.num_examples for c in counts) == summary["num_examples"]


def test_bad_share_over_the_limit_stops_at_the_example_gen_and_names_the_records(faulty_coco, tmp_path):
    path, applied = faulty_coco
    project = str(tmp_path / "p")
    data = DataConfig(path=path, format="coco", max_pixels=FAULT_MAX_PIXELS)
    with pytest.raises(PipelineRunFailed) as info:
        run_local(PipelineConfig(data=data, stop_after=Stage.VALIDATION), project, echo=lambda _: None)
    err = info.value
    assert err.node == "DetectionExampleGen" and isinstance(err.cause, QuarantineLimitExceeded)
    message = str(err.cause)
    assert "10 of 61 records (16.4%) were quarantined, more than the limit of 1.0%" in message
    assert f"image {applied['negative_width']!r}" in message and "--max-rejected-fraction" in message
    report = message.split("Every rejected record is listed in ")[1].split(". ", maxsplit=1)[0]
    assert len(open(report).read().splitlines()) == 10
    # Nothing that looks like usable examples is left, and nothing downstream ran.
    examples_root = os.path.join(ProjectPaths(project).pipeline_root, "DetectionExampleGen", "examples")
    assert not any(os.path.isdir(os.path.join(examples_root, d, "Split-train")) for d in os.listdir(examples_root))
    runs = latest_run(ProjectPaths(project).metadata_path, "detx")
    assert [(r.node, r.state) for r in runs] == [("DetectionExampleGen", "failed")]


def test_the_gate_stops_data_that_breaks_the_schema(small_datasets, tmp_path):
    data_dir = str(tmp_path / "tfr")
    shutil.copytree(small_datasets["tfrecord"], data_dir)
    add_crowded_tfrecord(data_dir, num_boxes=101)
    with pytest.raises(PipelineRunFailed) as info:
        run_local(
            PipelineConfig(data=DataConfig(path=data_dir, format="tfrecord"), stop_after=Stage.VALIDATION),
            str(tmp_path / "p"),
            echo=lambda _: None,
        )
    assert info.value.node == "DataGate" and isinstance(info.value.cause, DataGateFailed)
    message = str(info.value.cause)
    assert "the run stopped before training" in message
    assert "image/object/bbox/xmin: FEATURE_TYPE_HIGH_NUMBER_VALUES in 1 example(s), e.g. image ids crowded" in message
    assert "detx/stats/num_objects: INT_TYPE_BIG_INT in 1 example(s)" in message
    runs = latest_run(ProjectPaths(str(tmp_path / "p")).metadata_path, "detx")
    assert runs[-1].node == "DataGate" and runs[-1].state == "failed"


def test_cli_run_prints_progress_and_summary_and_fails_with_exit_1(small_datasets, faulty_coco, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--until",
            "validation",
            "--data",
            small_datasets["voc"],
            "--format",
            "voc",
            "--project",
            str(tmp_path / "ok"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "[1/5] DetectionExampleGen done" in result.output and "[5/5] DataGate done" in result.output
    assert "Data: 40 examples with" in result.output and "DataGate passed" in result.output
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--until",
            "validation",
            "--data",
            faulty_coco[0],
            "--project",
            str(tmp_path / "bad"),
            "--max-pixels",
            "1000000",
        ],
    )
    assert result.exit_code == 1
    assert "The run stopped at DetectionExampleGen" in result.output
    assert "were quarantined, more than the limit of 1.0%" in result.output
