"""The card's two renderings: every recorded fact appears, missing ones say so, names are escaped."""

from __future__ import annotations

import html.parser
import json
import os
import re

import pytest

from detx.components.model_card import render
from detx.components.model_card.facts import TRAINING_FACTS_FILE, ModelCardError, data_facts
from detx.components.model_store import ModelStore
from testing.data import write_examples

EVIL = "<script>alert(1)</script>"


def full_lineage() -> dict:
    """A lineage with every key the Pusher records, and a class name that tries to inject a script."""
    return {
        "model": {"uri": "/p/Trainer/model/6", "artifact_id": 6},
        "pipeline": {"name": "shapes", "run_id": "run-42"},
        "data": {"examples_uri": "/p/ExampleGen/examples/1", "examples_artifact_id": 1, "spans": [2, 3]},
        "metrics": {
            "map": 0.266,
            "map_50": 0.42,
            "map_75": 0.312,
            "ar_100": 0.464,
            "ap/circle": 0.196,
            f"ap/{EVIL}": 0.364,
            "example_count": 77.0,
        },
        "baseline": {"version": 3, "path": "/m/3", "metrics": {"map": 0.25, "map_50": 0.40, "ap/circle": 0.2}},
        "thresholds": {"min_map_50": 0.3, "max_map_50_drop": 0.01},
        "blessing_uri": "/p/DetectionEvaluator/blessing/7",
        "version": 4,
        "pushed_at": "2026-11-22T05:40:00+00:00",
        "data_facts": {
            "classes": ["circle", EVIL],
            "examples": 400,
            "boxes": 1268,
            "spans": [2, 3],
            "source": "/data/shapes",
            "format": "coco",
            "splits": {
                "eval": {
                    "examples": 77,
                    "boxes": 267,
                    "classes": {"circle": {"examples": 50, "boxes": 96}, EVIL: {"examples": 60, "boxes": 171}},
                },
                "train": {
                    "examples": 323,
                    "boxes": 1001,
                    "classes": {"circle": {"examples": 200, "boxes": 314}, EVIL: {"examples": 150, "boxes": 687}},
                },
            },
            "quarantine": {"records": 402, "rejected": 2, "fraction": 2 / 402, "reasons": {"corrupt_image": 2}},
        },
        "training": {
            "preset": "tiny",
            "train_steps": 400,
            "resumed_from_step": 0,
            "pretrained": "",
            "device": "CPU",
            "batch_size": 16,
            "duration_seconds": 212.4,
            "final_loss": 0.5466,
            "tensorflow_version": "2.16.2",
        },
        "evaluation": {
            "slices": {
                "detx/stats/num_objects=0": {"map_50": float("nan"), "example_count": 16.0},
                "detx/stats/num_objects=10": {"map_50": 0.2, "example_count": 3.0},
                "detx/stats/num_objects=2": {"map_50": 0.5, "example_count": 30.0},
            },
            "baseline_slices": {"detx/stats/num_objects=2": {"map_50": 0.45}},
        },
        "infra_validation": {
            "blessed": True,
            "server": "detx serve",
            "load_seconds": 3.21,
            "first_request_ms": 45.2,
            "p50_ms": 20.1,
            "p99_ms": 60.3,
            "concurrency": 4,
            "requests": 200,
            "peak_memory_mb": 812.5,
            "max_abs_diff": 1.2e-6,
            "budgets": {"p99_ms": 500.0, "peak_memory_mb": 2048},
            "reasons": [],
        },
        "approval": {
            "required": True,
            "state": "approved",
            "by": "ana",
            "at": "2026-11-23T10:00:00+00:00",
            "reason": "beats 3 | ship it",
        },
        "release": {"intended_use": "Counting shapes on a conveyor.", "limitations": "Synthetic shapes only."},
        "tflite": {
            "models": {"float16": {"path": "/m/4/tflite/float16.tflite", "map_50": 0.41, "size_bytes": 4200000}}
        },
    }


def _rows(md: str) -> list[list[str]]:
    """Markdown table rows as cells (an escaped \\| stays inside its cell)."""
    return [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in md.splitlines()
        if line.startswith("|")
    ]


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_every_recorded_fact_is_on_both_renderings():
    files = render.render(full_lineage(), {"version": 3, "pushed_at": "2026-11-20T08:00:00+00:00"})
    assert set(files) == {render.CARD_MD, render.CARD_HTML}
    md = files[render.CARD_MD].decode()
    rows = _rows(md)
    expected_rows = [
        ["Model name", "shapes"],
        ["Version", "4"],
        ["Model artifact id", "6"],
        ["Examples artifact id", "1"],
        ["Pipeline run id", "run-42"],
        ["Blessing", "/p/DetectionEvaluator/blessing/7"],
        ["Production when evaluated", "version 3, pushed 2026-11-20T08:00:00+00:00"],
        ["Spans", "2-3"],
        ["Boxes", "1,268"],
        ["Split", "Examples", "Boxes"],
        ["train", "323", "1,001"],
        ["eval", "77", "267"],
        ["Class", "train examples", "train boxes", "eval examples", "eval boxes"],
        ["circle", "200", "314", "50", "96"],
        ["corrupt_image", "2"],
        ["Starting weights", "none (from scratch)"],
        ["Final loss", "0.5466"],
        ["Metric", "This version", "Production (version 3)", "Difference"],
        ["mAP@0.5", "0.420", "0.400", "+0.020"],
        ["mAP@0.75", "0.312", "not recorded", ""],
        ["circle", "0.196", "0.200", "-0.004"],
        ["detx/stats/num_objects=2", "30", "0.500", "0.450", "+0.050"],
        ["detx/stats/num_objects=10", "3", "0.200", "not recorded", ""],
        ["detx/stats/num_objects=0", "16", "undefined", "not recorded", ""],
        ["Verdict", "blessed: mAP@0.5 0.420 >= 0.30, compared with production version 3 (mAP@0.5 0.400)"],
        ["Verdict", "INFRA_BLESSED"],
        ["Latency p99 (ms)", "60.3"],
        ["Largest difference from the in-process model", "1.2e-06"],
        ["peak_memory_mb", "2,048"],
        ["By", "ana"],
        ["Reason", "beats 3 | ship it"],
        ["float16", "/m/4/tflite/float16.tflite", "0.410", "4,200,000"],
    ]
    for row in expected_rows:
        assert row in rows, row
    # Slices in natural order: 2 objects before 10.
    assert rows.index(expected_rows[21]) < rows.index(expected_rows[22])
    widths = {len(r) for r in rows if r and r[0] in ("Reason", "By")}
    assert widths == {2}  # the "|" in the approval reason did not split its row
    assert "Quarantined: 2 of 402 records (0.5%)." in md
    assert 'On the eval split (77 examples); "undefined": there were no boxes to find' in md
    assert "Counting shapes on a conveyor." in md and "Synthetic shapes only." in md
    assert "Reasons: none." in md and "not recorded" not in md.replace("| not recorded |", "")

    page = files[render.CARD_HTML].decode()
    tags = _Tags()
    tags.feed(page)
    text = "".join(tags.text)
    for row in expected_rows:
        for cell in row:
            assert cell in text, cell
    assert EVIL in text  # shown as text ...
    assert "script" not in tags.tags and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # ... never run
    # Self-contained: no scripts, links, images or fetched URLs; the style is inline.
    assert not {"script", "link", "img", "iframe"} & set(tags.tags) and "style" in tags.tags
    assert not [v for k, v in tags.attrs if k in ("src", "href")] and "url(" not in page


def test_the_markdown_escapes_raw_html_but_keeps_comparisons_readable():
    md = render.render(full_lineage(), None)[render.CARD_MD].decode()
    assert EVIL not in md and "&lt;script>alert(1)&lt;/script>" in md
    assert ">= 0.30" in md


def test_a_warm_start_is_stated_when_the_trainer_recorded_one():
    lineage = full_lineage()
    lineage["training"] = {
        **lineage["training"],
        "pretrained": "/m/3",
        "warm_start": {"version": 3, "path": "/m/3", "classes": ["circle"], "new_classes": ["square"]},
        "warmup_steps": 50,
        "learning_rate": 0.0125,
    }
    rows = _rows(render.render(lineage, None)[render.CARD_MD].decode())
    assert ["Warm start", "from version 3 (/m/3)"] in rows
    assert ["Classes new to the starting model", "square"] in rows
    assert ["Warm-up steps", "50"] in rows and ["Peak learning rate", "0.0125"] in rows
    assert "Warm start" not in render.render(full_lineage(), None)[render.CARD_MD].decode()


def test_the_tuning_section_shows_the_space_searched_and_the_values_trained_with():
    lineage = full_lineage()
    lineage["training"] = {
        **lineage["training"],
        "tuning": {
            "space": {"learning_rate_scale": [0.1, 0.3, 1.0, 2.0], "augment": [False, True]},
            "values": {"learning_rate_scale": 0.3, "augment": False},
        },
    }
    files = render.render(lineage, None)
    md = files[render.CARD_MD].decode()
    rows = _rows(md)
    assert "### Tuning" in md and ["Hyperparameter", "Searched", "Trained with"] in rows
    assert ["learning_rate_scale", "0.1, 0.3, 1.0, 2.0", "0.3"] in rows
    assert ["augment", "False, True", "False"] in rows
    assert "learning_rate_scale" in files[render.CARD_HTML].decode()
    lineage["training"]["tuning"] = None  # the Tuner was off, or not in the pipeline
    assert "Tuning: off (the Trainer used its own settings)." in render.render(lineage, None)[render.CARD_MD].decode()
    assert "Tuning" not in render.render(full_lineage(), None)[render.CARD_MD].decode()  # an older Trainer


def test_a_release_without_sign_off_has_no_who_when_or_why():
    lineage = {**full_lineage(), "approval": {"required": False, "state": "not required"}}
    rows = _rows(render.render(lineage, None)[render.CARD_MD].decode())
    assert ["Required", "no"] in rows and ["State", "not required"] in rows
    assert not [r for r in rows if r and r[0] in ("By", "At")]


@pytest.mark.parametrize(
    "lineage", [{}, {"version": 1, "pushed_at": "2026-01-01T00:00:00+00:00", "metrics": {"map_50": 0.5}}]
)
def test_a_legacy_lineage_renders_with_not_recorded(lineage):
    files = render.render(lineage, None)
    md = files[render.CARD_MD].decode()
    rows = _rows(md)
    for label in ("Model name", "Pipeline run id", "Spans", "Production when evaluated"):
        assert [label, render.NOT_RECORDED] in rows
    for section in ("Training facts", "Infra-validation", "Approval"):
        assert f"{section}: {render.NOT_RECORDED}" in md
    assert "Examples and boxes per split and per class: not recorded." in md
    assert "no model was in production" not in md  # unknown is not the same as none
    assert "TFLite" not in md
    assert "not recorded" in files[render.CARD_HTML].decode()
    if lineage:
        assert ["mAP@0.5", "0.500"] in rows and ["Version", "1"] in rows


def test_write_puts_both_files_in_the_version_directory(tmp_path):
    written = render.write(str(tmp_path), full_lineage(), None)
    assert written == {name: os.path.join(str(tmp_path), name) for name in (render.CARD_MD, render.CARD_HTML)}
    expected = render.render(full_lineage(), None)
    for name, path in written.items():
        with open(path, "rb") as f:
            assert f.read() == expected[name]
    assert sorted(os.listdir(tmp_path / render.CARD_DIR)) == ["model_card.html", "model_card.md"]


def test_rebuild_fills_in_facts_an_old_lineage_lacks(tmp_path, fake_saved_model):
    examples = write_examples(str(tmp_path / "examples"), 10, seed=1, splits={"train": 6, "eval": 4})
    model = fake_saved_model(tmp_path / "model")
    os.makedirs(os.path.join(model, "assets.extra"))
    with open(os.path.join(model, TRAINING_FACTS_FILE), "w") as f:
        json.dump({"preset": "zoo320", "train_steps": 9000, "pretrained": "/zoo/ssd320", "device": "GPU: T4"}, f)
    store = ModelStore(str(tmp_path / "dest"))
    store.push(model, {"metrics": {"map_50": 0.61}, "baseline": {"version": None, "path": None, "metrics": {}}})
    store.push(
        model,
        {
            "metrics": {"map_50": 0.7},
            "baseline": {"version": 1, "metrics": {"map_50": 0.6}},
            "data": {"examples_uri": examples},
        },
    )

    written = render.rebuild(store, 2)
    with open(written[render.CARD_MD]) as f:
        rows = _rows(f.read())
    facts = data_facts(examples)["splits"]
    assert ["train", "6", str(facts["train"]["boxes"])] in rows and ["eval", "4", str(facts["eval"]["boxes"])] in rows
    assert ["Starting weights", "/zoo/ssd320"] in rows and ["Device", "GPU: T4"] in rows
    assert ["mAP@0.5", "0.700", "0.600", "+0.100"] in rows
    assert store.lineage(2)["metrics"] == {"map_50": 0.7}  # the lineage itself is left as it was
    rows1 = _rows(open(render.rebuild(store, 1)[render.CARD_MD]).read())
    assert ["Production when evaluated", "none (first push)"] in rows1

    pending = store.push(
        model, {"metrics": {"map_50": 0.8}, "approval": {"required": True, "state": "pending"}}, pending=True
    )
    assert render.version_dir(store, pending.version) == pending.path
    written = render.rebuild(store, pending.version)
    assert written[render.CARD_HTML] == os.path.join(pending.path, render.CARD_HTML)
    assert ["State", "pending"] in _rows(open(written[render.CARD_MD]).read())
    store.rollback(1)  # version 2 goes to .retired/; its card is still found there
    assert render.version_dir(store, 2) == os.path.join(store.root, ".retired", "2")
    assert render.version_dir(store, 9) is None


def test_rebuild_says_why_it_cannot(tmp_path, fake_saved_model):
    store = ModelStore(str(tmp_path / "dest"))
    with pytest.raises(ModelCardError, match=r"there is no version 3 in .*`detx models` lists the versions"):
        render.rebuild(store, 3)
    fake_saved_model(tmp_path / "dest" / "1")  # a version pushed by another tool: no lineage
    with pytest.raises(ModelCardError, match=r"version 1 has no detx_lineage\.json .*nothing to build its card from"):
        render.rebuild(store, 1)
    assert not os.path.exists(tmp_path / "dest" / "1" / render.CARD_DIR)
