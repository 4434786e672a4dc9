"""`detx ct check`: should the pipeline retrain now, and why.

Signals, each with the figures behind it:

- **no model**: nothing is served yet.
- **new data**: spans newer than the served model's newest training span hold
  at least `min_new_images` images.
- **drift**: those new spans against the served model's training statistics
  (class mix, box size, brightness; `drift.py`), and classes the served model
  does not know.
- **age**: the served version was pushed more than `max_model_age_days` ago.
- **live quality**: the mean top score of the served version's logged
  requests fell more than `max_score_drop` below its eval split's.
- **skew** (reported, never a trigger on its own: retraining needs labelled
  data from the new conditions): serving-time brightness against training.
- **staleness** (with `QualityOptions`): the served version's mAP@0.5 on each
  new span's eval split against its own eval mAP@0.5 (`staleness.py`, cached
  in `ct_quality.json`); a trigger when the newest scored span lost more than
  `max_staleness_drop`, else reported.
- **agreement** (reported, with a request log and `QualityOptions`): each
  logged version's live confidence against its eval split's (`agreement.py`).

A retraining is due when any trigger fires. `key` names what it would be for
(the served version and the spans), which `detx ct run` uses to start at most
one retraining per situation.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable
from typing import Any

from tensorflow_metadata.proto.v0 import statistics_pb2

from detx.components.data import spans as spans_lib
from detx.components.data.ingest_options import IngestOptions
from detx.components.data.scan import Scan
from detx.components.data.sources import scan_window
from detx.components.evaluation import score_profile
from detx.components.example_gen.report import describe_spans
from detx.components.model_store import ModelStore
from detx.pipeline.config import ContinuousTrainingConfig
from detx.pipeline.ct import drift, quality, staleness, stats
from detx.pipeline.ct.agreement import DISAGREES, VersionAgreement
from detx.serving.model_server import request_log


@dataclasses.dataclass(frozen=True)
class Signal:
    """One line of the check.

    Attributes:
        name: "no model", "new data", "drift", "new class", "age", "live quality", "skew".
        triggered: whether it calls for a retraining.
        message: what was measured, against what.
        warning: a report-only signal (skew) that passed its threshold: shown, never a trigger.
    """

    name: str
    triggered: bool
    message: str
    warning: bool = False


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of a check.

    Attributes:
        retrain: whether a trigger fired.
        signals: every signal looked at.
        served_version: the version in production (None: none).
        spans: the spans in the data root.
        new_spans: spans the served model has not seen.
        window: the spans a retraining would read.
        staleness: the served version's points on the new spans (oldest first).
        agreement: each logged version's offline/online agreement (newest version first).
    """

    retrain: bool
    signals: tuple[Signal, ...]
    served_version: int | None
    spans: tuple[int, ...]
    new_spans: tuple[int, ...]
    window: tuple[int, ...]
    staleness: tuple[staleness.Point, ...] = ()
    agreement: tuple[VersionAgreement, ...] = ()

    @property
    def reasons(self) -> list[str]:
        """The messages of the signals that fired."""
        return [s.message for s in self.signals if s.triggered]

    @property
    def key(self) -> str:
        """What a retraining now would be for: the same key twice means nothing changed in between."""
        served = self.served_version if self.served_version is not None else "none"
        return f"served={served};spans={','.join(map(str, self.window))}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (`detx ct check --json`)."""
        d = dataclasses.asdict(self)
        d.update(reasons=self.reasons, key=self.key)
        d.update(staleness=[p.to_dict() for p in self.staleness], agreement=[a.to_dict() for a in self.agreement])
        return d

    def format(self) -> str:
        """The check as people read it."""
        lines = []
        for s in self.signals:
            mark = "TRIGGER" if s.triggered else ("WARNING" if s.warning else "ok     ")
            lines.append(f"  {mark} {s.name}: {s.message}")
        if self.agreement:
            lines.append("offline/online agreement (mean top score, live vs eval split):")
            lines.extend(f"  {a.sentence()}" for a in self.agreement)
        if self.staleness:
            lines.append(f"staleness: version {self.served_version}'s mAP@0.5 on the new spans' eval splits")
            lines.append(staleness.table(self.staleness))
        verdict = f"retrain on {describe_spans(self.window)}" if self.retrain else "no retraining needed"
        served = f"version {self.served_version}" if self.served_version is not None else "no version"
        data = describe_spans(self.spans) if self.spans else "no spans"
        return "\n".join([f"detx ct check: {served} served; data {data}", *lines, verdict])


def _age_days(pushed_at: str, now: datetime.datetime) -> float | None:
    try:
        pushed = datetime.datetime.fromisoformat(pushed_at)
    except (TypeError, ValueError):
        return None
    return (now - pushed).total_seconds() / 86400


def _trained_spans(lineage: dict[str, Any], root: str) -> list[int]:
    data = lineage.get("data", {})
    source = str(data.get("source", "")).rstrip("/")
    if source and os.path.normpath(source) != os.path.normpath(root.rstrip("/")):
        return []  # trained on another data root: every span here is new to it
    return [int(s) for s in data.get("spans", [])]


def check(
    data_root: str,
    options: IngestOptions,
    push_destination: str,
    config: ContinuousTrainingConfig,
    now: datetime.datetime | None = None,
    echo: Callable[[str], None] | None = None,
    quality_options: quality.QualityOptions | None = None,
) -> Decision:
    """Looks at every signal and decides.

    Args:
        data_root: the span root.
        options: ingestion options; `span_window` is the window a retraining reads.
        push_destination: the model base path in production.
        config: thresholds.
        now: the time to measure the model's age against (tests).
        echo: progress lines.
        quality_options: where to keep the staleness curve and agreement, and the staleness
            limit (None: neither is measured).

    Raises:
        detx.components.data.scan.DatasetError: the data root has no spans, or a span cannot be read.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    window_size = max(options.span_window, 1)
    all_spans = spans_lib.list_spans(data_root)
    window = spans_lib.window(data_root, None, window_size)
    store = ModelStore(push_destination)
    served = store.serving_version()
    signals: list[Signal] = []
    if served is None:
        signals.append(Signal("no model", True, f"no version is served from {push_destination}: train the first one"))
        return Decision(True, tuple(signals), None, tuple(all_spans), tuple(all_spans), tuple(window))

    lineage = store.lineage(served)
    version_dir = store.path(served)
    training = stats.training_statistics(version_dir)  # read once: drift and skew both compare with it
    trained = _trained_spans(lineage, data_root)
    new = [s for s in all_spans if s > max(trained, default=0)]
    if not new:
        signals.append(
            Signal(
                "new data",
                False,
                f"no span newer than {max(trained, default=0)} (version {served} was trained on "
                f"{describe_spans(trained) if trained else 'no span of this root'})",
            )
        )
    else:
        scan = scan_window(options, data_root, new)
        enough = scan.num_records >= config.min_new_images
        signals.append(
            Signal(
                "new data",
                enough,
                f"{describe_spans(new)}: {scan.num_records} new images "
                f"({'at least' if enough else 'fewer than'} {config.min_new_images})",
            )
        )
        signals.extend(_drift_signals(scan, new, options, training, version_dir, config, echo))

    age = _age_days(lineage.get("pushed_at", ""), now)
    if config.max_model_age_days and age is not None:
        old = age > config.max_model_age_days
        signals.append(
            Signal(
                "age",
                old,
                f"version {served} was pushed {age:.1f} days ago "
                f"({'more' if old else 'less'} than {config.max_model_age_days:g})",
            )
        )
    if config.request_log:
        signals.extend(_live_signals(config, served, lineage, training))
    points: list[staleness.Point] = []
    agreement: list[VersionAgreement] = []
    if quality_options is not None:
        record = quality.QualityRecord(quality_options.state_dir)
        if new:
            try:
                points, _ = quality.staleness_curve(
                    record, store, served, data_root, new, options, quality_options.splits, echo
                )
            except ValueError as e:  # no eval split configured, or a version without a label map
                signals.append(Signal("staleness", False, f"not measured: {e}"))
            signals.extend(_staleness_signals(points, quality_options.max_staleness_drop))
        if config.request_log:
            agreement = quality.live_agreement(config.request_log, store, config.max_score_drop, config.min_live_images)
            record.set_agreement(agreement)
            signals.extend(_agreement_signals(agreement))
    retrain = any(s.triggered for s in signals)
    return Decision(
        retrain, tuple(signals), served, tuple(all_spans), tuple(new), tuple(window), tuple(points), tuple(agreement)
    )


def _staleness_signals(points: list[staleness.Point], max_drop: float) -> list[Signal]:
    """One line on the newest scored span: a trigger past `max_drop` (0: reported only)."""
    scored = [p for p in points if p.drop is not None]
    if not scored:
        return []
    newest = scored[-1]
    drop = newest.drop or 0.0
    if not max_drop:
        return [Signal("staleness", False, f"{staleness.sentence(newest)}; no limit set (reported only)")]
    over = drop > max_drop
    limit = f"{'more' if over else 'no more'} than the {max_drop:.2f} allowed"
    return [Signal("staleness", over, f"{staleness.sentence(newest)}: {limit}")]


def _agreement_signals(rows: list[VersionAgreement]) -> list[Signal]:
    """A warning per version whose live confidence disagrees with its eval split's (never a trigger)."""
    return [Signal("agreement", False, row.sentence(), warning=True) for row in rows if row.verdict == DISAGREES]


def _drift_signals(
    scan: Scan,
    new: list[int],
    options: IngestOptions,
    reference: statistics_pb2.DatasetFeatureStatisticsList | None,
    version_dir: str,
    config: ContinuousTrainingConfig,
    echo: Callable[[str], None] | None,
) -> list[Signal]:
    if reference is None:
        return [Signal("drift", False, f"{version_dir} has no training statistics (pushed without them): not checked")]

    def progress(done: int, total: int) -> None:
        if echo is not None:
            echo(f"  reading new spans: {done}/{total} images")

    summary = stats.scan_statistics(scan, new, options, progress)
    findings = drift.drift(summary.statistics, reference, config.class_linf, config.box_size_jsd, config.brightness_jsd)
    signals = [Signal("drift", f.exceeded, f.sentence()) for f in findings]
    unknown = drift.new_classes(summary.statistics, staleness.label_names(version_dir))
    for name, share in sorted(unknown.items()):
        signals.append(
            Signal("new class", True, f"{name!r} is {share:.0%} of the new boxes; the served model cannot detect it")
        )
    return signals


def _live_signals(
    config: ContinuousTrainingConfig,
    served: int,
    lineage: dict[str, Any],
    training: statistics_pb2.DatasetFeatureStatisticsList | None,
) -> list[Signal]:
    records = list(request_log.read_log(config.request_log, version=served))
    if len(records) < config.min_live_images:
        return [
            Signal(
                "live quality",
                False,
                f"{len(records)} logged images of version {served} in {config.request_log}, "
                f"fewer than the {config.min_live_images} needed",
            )
        ]
    signals = []
    reference = lineage.get("metrics", {}).get(score_profile.TOP_SCORE)
    live = sum(r.top_score for r in records) / len(records)
    if reference:
        drop = (reference - live) / reference
        signals.append(
            Signal(
                "live quality",
                drop > config.max_score_drop,
                f"mean top score {live:.2f} over {len(records)} logged images vs {reference:.2f} on the eval split "
                f"({-drop:+.0%}; limit -{config.max_score_drop:.0%})",
            )
        )
    if training is not None:
        serving = stats.examples_statistics(request_log.stats_examples(records))
        finding = drift.brightness_skew(training, serving, config.skew_brightness_jsd)
        if finding is not None:
            signals.append(Signal("skew", False, finding.sentence(), warning=finding.exceeded))
    return signals
