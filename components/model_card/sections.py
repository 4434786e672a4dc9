"""The model card's content: a version's lineage turned into labelled, formatted rows and tables.

Every number is formatted here, once, for both templates. Anything the
lineage lacks (a version pushed before a step existed, or a step that did not
run) reads NOT_RECORDED, never a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from detx.components.evaluator.report import EvaluationReport
from detx.components.example_gen.report import format_spans

NOT_RECORDED = "not recorded"
UNDEFINED = "undefined"
_OVERALL = (("map", "mAP@[.50:.95]"), ("map_50", "mAP@0.5"), ("map_75", "mAP@0.75"), ("ar_100", "AR@100"))

Table = dict[str, list[Any]]


def _text(value: Any) -> str:
    return NOT_RECORDED if value is None or value == "" else str(value)


def _num(value: Any, digits: int | None = 3) -> str:
    """A number for people: floats with `digits` decimals (None: as short as exact, `1.2e-06`), ints in full."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NOT_RECORDED
    if math.isnan(value):
        # Recorded, but it has no value: COCO AP on images without boxes, for one.
        return UNDEFINED
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if digits is None else f"{value:,.{digits}f}"


def _count(value: Any) -> str:
    # TFMA reports counts as floats (example_count 77.0).
    return _num(int(value) if isinstance(value, float) and value.is_integer() else value)


def _diff(value: Any, base: Any) -> str:
    if {_num(value), _num(base)} & {NOT_RECORDED, UNDEFINED}:
        return ""
    return f"{value - base:+.3f}"


def _yes(value: Any) -> str:
    return NOT_RECORDED if value is None else ("yes" if value else "no")


def _natural(name: str) -> list[Any]:
    """Sort key that puts `num_objects=2` before `num_objects=10`."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _split_order(name: str) -> tuple[int, str]:
    return ({"train": 0, "eval": 1}.get(name, 2), name)


def _details(lineage: Mapping[str, Any], production: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    model, pipeline, data = lineage.get("model", {}), lineage.get("pipeline", {}), lineage.get("data", {})
    baseline = lineage.get("baseline", {})
    if baseline.get("version") is not None:
        pushed = f", pushed {production['pushed_at']}" if production and production.get("pushed_at") else ""
        against = f"version {baseline['version']}{pushed}"
    else:
        against = baseline.get("path") or "none (first push)" if baseline else NOT_RECORDED
    return [
        ("Model name", _text(pipeline.get("name"))),
        ("Version", _text(lineage.get("version"))),
        ("Pushed at", _text(lineage.get("pushed_at"))),
        ("Model artifact id", _text(model.get("artifact_id"))),
        ("Model artifact", _text(model.get("uri"))),
        ("Examples artifact id", _text(data.get("examples_artifact_id"))),
        ("Examples artifact", _text(data.get("examples_uri"))),
        ("Pipeline run id", _text(pipeline.get("run_id"))),
        ("Blessing", _text(lineage.get("blessing_uri"))),
        ("Production when evaluated", against),
    ]


def _data(lineage: Mapping[str, Any]) -> dict[str, Any]:
    facts, data = lineage.get("data_facts") or {}, lineage.get("data", {})
    spans = facts.get("spans", data.get("spans"))
    rows = [
        ("Spans", format_spans(spans) if spans else NOT_RECORDED if spans is None else "none (one dataset)"),
        ("Source", _text(facts.get("source", data.get("source")))),
        ("Format", _text(facts.get("format"))),
        ("Examples", _count(facts.get("examples", data.get("num_examples")))),
        ("Boxes", _count(facts.get("boxes"))),
    ]
    splits = facts.get("splits", {})
    names = sorted(splits, key=_split_order)
    classes: Table = {
        "header": ["Class", *(f"{s} {what}" for s in names for what in ("examples", "boxes"))],
        "rows": [],
    }
    known = list(facts.get("classes", []))
    for cls in known + sorted({c for s in splits.values() for c in s["classes"]} - set(known)):
        counts = [splits[s]["classes"].get(cls, {}) for s in names]
        classes["rows"].append([cls, *(_count(c.get(k, 0)) for c in counts for k in ("examples", "boxes"))])
    quarantine = facts.get("quarantine")
    if quarantine:
        fraction = quarantine.get("fraction")
        share = f" ({fraction:.1%})" if isinstance(fraction, float) else ""
        rejected = f"{_count(quarantine.get('rejected'))} of {_count(quarantine.get('records'))} records{share}"
    else:
        rejected = _count(data.get("num_rejected"))
    return {
        "rows": rows,
        "splits": {
            "header": ["Split", "Examples", "Boxes"],
            "rows": [[s, _count(splits[s]["examples"]), _count(splits[s]["boxes"])] for s in names],
        },
        "classes": classes,
        "quarantined": rejected,
        "reasons": sorted((quarantine or {}).get("reasons", {}).items()),
    }


def _training(lineage: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    facts = lineage.get("training")
    if not facts:
        return None
    resumed = facts.get("resumed_from_step")
    start = "none (from scratch)" if facts.get("pretrained") == "" else _text(facts.get("pretrained"))
    if facts.get("pretrained_fallback_reason"):
        start += f" (fell back: {facts['pretrained_fallback_reason']})"
    rows = [
        ("Preset", _text(facts.get("preset"))),
        ("Steps", _count(facts.get("train_steps")) + (f" (resumed at step {resumed})" if resumed else "")),
        ("Starting weights", start),
    ]
    # Warm starts (from a pushed version) are recorded by newer Trainers only: older facts have no such key.
    if "warm_start" in facts:
        warm = facts["warm_start"] or {}
        rows.append(
            ("Warm start", f"from version {_text(warm.get('version'))} ({_text(warm.get('path'))})" if warm else "no")
        )
        if warm.get("new_classes"):
            rows.append(("Classes new to the starting model", ", ".join(map(str, warm["new_classes"]))))
    if "warmup_steps" in facts:
        rows.append(("Warm-up steps", _count(facts.get("warmup_steps"))))
    if "learning_rate" in facts:
        rows.append(("Peak learning rate", _num(facts.get("learning_rate"), None)))
    return [
        *rows,
        ("Device", _text(facts.get("device"))),
        ("Batch size", _count(facts.get("batch_size"))),
        ("Duration (s)", _num(facts.get("duration_seconds"), 1)),
        ("Final loss", _num(facts.get("final_loss"), 4)),
        ("TensorFlow", _text(facts.get("tensorflow_version"))),
    ]


def _metrics(lineage: Mapping[str, Any]) -> dict[str, Any]:
    metrics, baseline = lineage.get("metrics") or {}, lineage.get("baseline") or {}
    base = baseline.get("metrics") or {}
    compared = baseline.get("version") is not None or bool(baseline.get("path"))
    if baseline.get("version") is not None:
        against = f"production (version {baseline['version']})"
    else:
        against = "the baseline model" if compared else ""
    examples = metrics.get("example_count")
    note = "On the eval split" + (f" ({_count(examples)} examples)" if _count(examples) != NOT_RECORDED else "")
    if not lineage.get("baseline"):
        note += f"; the model it was compared with: {NOT_RECORDED}"
    elif not compared:
        note += "; no model was in production to compare with"
    header = ["Metric", "This version", *([against.capitalize(), "Difference"] if compared else [])]

    def row(label: str, value: Any, base_value: Any) -> list[str]:
        return [label, _num(value), *([_num(base_value), _diff(value, base_value)] if compared else [])]

    order = (lineage.get("data_facts") or {}).get("classes", [])
    # Label order when the data facts give it, then any other class alphabetically.
    classes = sorted(
        (k[3:] for k in metrics if k.startswith("ap/")),
        key=lambda c: (c not in order, order.index(c) if c in order else 0, c),
    )
    evaluation = lineage.get("evaluation") or {}
    slices, base_slices = evaluation.get("slices") or {}, evaluation.get("baseline_slices") or {}
    tables: dict[str, Table | None] = {
        "overall": {"header": header, "rows": [row(label, metrics.get(k), base.get(k)) for k, label in _OVERALL]},
        "classes": {
            "header": ["Class (AP@[.50:.95])", *header[1:]],
            "rows": [row(c, metrics.get(f"ap/{c}"), base.get(f"ap/{c}")) for c in classes],
        },
        "slices": {
            "header": ["Slice", "Examples", "mAP@0.5", *([against.capitalize(), "Difference"] if compared else [])],
            "rows": [
                [
                    name,
                    _count(values.get("example_count")),
                    *row(name, values.get("map_50"), base_slices.get(name, {}).get("map_50"))[1:],
                ]
                for name, values in sorted(slices.items(), key=lambda kv: _natural(kv[0]))
            ],
        }
        if slices
        else None,
    }
    if any(UNDEFINED in r for t in tables.values() if t for r in t["rows"]):
        note += f'; "{UNDEFINED}": there were no boxes to find (COCO AP is undefined without ground truth)'
    return {"recorded": bool(metrics), "note": note + ".", **tables}


def _blessing(lineage: Mapping[str, Any]) -> list[tuple[str, str]]:
    thresholds, baseline = lineage.get("thresholds") or {}, lineage.get("baseline") or {}
    verdict = NOT_RECORDED
    if lineage.get("metrics") and thresholds:
        # The Evaluator's own sentence; a version in the push destination was blessed to get there.
        verdict = EvaluationReport(
            blessed=True,
            reasons=[],
            metrics=lineage["metrics"],
            baseline_version=baseline.get("version"),
            baseline_path=baseline.get("path"),
            baseline_metrics=baseline.get("metrics") or {},
            min_map_50=thresholds.get("min_map_50", math.nan),
            max_map_50_drop=thresholds.get("max_map_50_drop", math.nan),
        ).verdict()
    return [
        ("Verdict", verdict),
        ("Minimum mAP@0.5", _num(thresholds.get("min_map_50"), 2)),
        ("Largest allowed drop below production", _num(thresholds.get("max_map_50_drop"), 3)),
    ]


def _infra(lineage: Mapping[str, Any]) -> dict[str, Any] | None:
    infra = lineage.get("infra_validation")
    if not infra:
        return None
    blessed = infra.get("blessed")
    return {
        "rows": [
            ("Verdict", NOT_RECORDED if blessed is None else ("INFRA_BLESSED" if blessed else "INFRA_NOT_BLESSED")),
            ("Model server", _text(infra.get("server"))),
            ("Load time (s)", _num(infra.get("load_seconds"), 2)),
            ("First request (ms)", _num(infra.get("first_request_ms"), 1)),
            ("Latency p50 (ms)", _num(infra.get("p50_ms"), 1)),
            ("Latency p99 (ms)", _num(infra.get("p99_ms"), 1)),
            ("Concurrency", _count(infra.get("concurrency"))),
            ("Requests", _count(infra.get("requests"))),
            ("Peak memory (MB)", _num(infra.get("peak_memory_mb"), 1)),
            ("Largest difference from the in-process model", _num(infra.get("max_abs_diff"), None)),
        ],
        "budgets": [(name, _num(value, None)) for name, value in sorted((infra.get("budgets") or {}).items())],
        "reasons": [str(r) for r in infra.get("reasons") or []],
    }


def _approval(lineage: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    approval = lineage.get("approval")
    if not approval:
        return None
    rows = [("Required", _yes(approval.get("required"))), ("State", _text(approval.get("state")))]
    if approval.get("required") is False and not approval.get("by"):
        return rows  # released without sign-off: there is no who, when or why to record
    return [
        *rows,
        ("By", _text(approval.get("by"))),
        ("At", _text(approval.get("at"))),
        ("Reason", _text(approval.get("reason"))),
    ]


def _tflite(lineage: Mapping[str, Any]) -> Table | None:
    models = (lineage.get("tflite") or {}).get("models") or {}
    if not models:
        return None
    return {
        "header": ["Model", "Path", "mAP@0.5", "Size (bytes)"],
        "rows": [
            [name, _text(m.get("path")), _num(m.get("map_50")), _count(m.get("size_bytes"))]
            for name, m in sorted(models.items())
        ],
    }


def _tuning(lineage: Mapping[str, Any]) -> Table | str | None:
    """Each knob the Tuner searched, its choices and the value trained with; "off" when the Trainer had none."""
    facts = lineage.get("training") or {}
    if "tuning" not in facts:
        return None  # a Trainer older than the Tuner step
    tuning = facts["tuning"] or {}
    if not tuning.get("values"):
        return "off"
    searched = tuning.get("space") or {}
    return {
        "header": ["Hyperparameter", "Searched", "Trained with"],
        "rows": [
            [name, ", ".join(map(_text, searched.get(name, []))) or NOT_RECORDED, _text(value)]
            for name, value in sorted(tuning["values"].items())
        ],
    }


def view(lineage: Mapping[str, Any], production: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the templates lay out: one entry per card section (see `render.render` for the arguments)."""
    release = lineage.get("release") or {}
    name = (lineage.get("pipeline") or {}).get("name") or "model"
    return {
        "title": f"{name} version {_text(lineage.get('version'))}",
        "not_recorded": NOT_RECORDED,
        "details": _details(lineage, production),
        "intended_use": _text(release.get("intended_use")),
        "limitations": _text(release.get("limitations")),
        "data": _data(lineage),
        "training": _training(lineage),
        "tuning": _tuning(lineage),
        "metrics": _metrics(lineage),
        "blessing": _blessing(lineage),
        "infra": _infra(lineage),
        "approval": _approval(lineage),
        "tflite": _tflite(lineage),
    }
