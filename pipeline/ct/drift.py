"""Drift and skew, measured by TFDV's comparators and said in words.

Drift compares new data with the data the served model was trained on:
TFDV's L-infinity distance on the class mix (`image/object/class/text`) and
Jensen-Shannon divergence on box areas and image brightness (the comparators
TFDV applies with `validate_statistics(..., previous_statistics=...)`).
Skew compares what the server sees with the training data: Jensen-Shannon
divergence on brightness (`serving_statistics=...`). TFDV computes the
numbers; this module picks the thresholds and writes the sentences.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from detx.components.data import features as F

L_INFINITY = "L-infinity"
JENSEN_SHANNON = "Jensen-Shannon"
# TFDV's DriftSkewInfo measurement types.
_MEASURES = {1: L_INFINITY, 2: JENSEN_SHANNON}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One measured comparison.

    Attributes:
        signal: what was compared ("class mix", "box size", "brightness", ...).
        measure: L-infinity or Jensen-Shannon.
        value: TFDV's number.
        threshold: the configured limit.
        detail: the figures behind it, for people.
    """

    signal: str
    measure: str
    value: float
    threshold: float
    detail: str

    @property
    def exceeded(self) -> bool:
        """True when the value passes the threshold."""
        return self.value > self.threshold

    def sentence(self) -> str:
        """E.g. `brightness: Jensen-Shannon 0.82 > 0.10 (mean 52, was 104)`."""
        op = ">" if self.exceeded else "<="
        return f"{self.signal}: {self.measure} {self.value:.2f} {op} {self.threshold:.2f} ({self.detail})"


def _dataset(stats: statistics_pb2.DatasetFeatureStatisticsList) -> statistics_pb2.DatasetFeatureStatistics:
    if not stats.datasets:
        raise ValueError("the statistics hold no dataset")
    return stats.datasets[0]


def feature(
    stats: statistics_pb2.DatasetFeatureStatisticsList, name: str
) -> statistics_pb2.FeatureNameStatistics | None:
    """The statistics of one feature (None if absent)."""
    for f in _dataset(stats).features:
        if f.path.step == [name] or f.name == name:
            return f
    return None


def class_shares(stats: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, float]:
    """Each class's share of the boxes, from the class-text rank histogram."""
    f = feature(stats, F.TEXT)
    if f is None:
        return {}
    buckets = f.string_stats.rank_histogram.buckets
    total = sum(b.sample_count for b in buckets)
    return {b.label: b.sample_count / total for b in buckets} if total else {}


def _num(stats: statistics_pb2.DatasetFeatureStatisticsList, name: str, what: str) -> float:
    f = feature(stats, name)
    return float(getattr(f.num_stats, what)) if f is not None else float("nan")


def _schema(drift: dict[str, tuple[str, float]], skew: dict[str, float]) -> schema_pb2.Schema:
    schema = schema_pb2.Schema()
    for name in {*drift, *skew}:
        f = schema.feature.add(name=name, type=schema_pb2.BYTES if name == F.TEXT else schema_pb2.FLOAT)
        if name in drift:
            kind, threshold = drift[name]
            comparator = f.drift_comparator
            if kind == L_INFINITY:
                comparator.infinity_norm.threshold = threshold
            else:
                comparator.jensen_shannon_divergence.threshold = threshold
        if name in skew:
            f.skew_comparator.jensen_shannon_divergence.threshold = skew[name]
    return schema


def _measurements(anomalies: object, attribute: str) -> dict[str, float]:
    out = {}
    for info in anomalies.drift_skew_info:  # type: ignore[attr-defined]
        for m in getattr(info, attribute):
            out[info.path.step[-1]] = float(m.value)
    return out


def drift(
    new: statistics_pb2.DatasetFeatureStatisticsList,
    reference: statistics_pb2.DatasetFeatureStatisticsList,
    class_linf: float,
    box_size_jsd: float,
    brightness_jsd: float,
) -> list[Finding]:
    """Class mix, box size and brightness of `new` against `reference`, one Finding each (when measurable)."""
    limits = {F.TEXT: (L_INFINITY, class_linf), F.BOX_AREA: (JENSEN_SHANNON, box_size_jsd)}
    limits[F.BRIGHTNESS] = (JENSEN_SHANNON, brightness_jsd)
    anomalies = tfdv.validate_statistics(new, _schema(limits, {}), previous_statistics=reference)
    values = _measurements(anomalies, "drift_measurements")
    findings = []
    if F.TEXT in values:
        now, before = class_shares(new), class_shares(reference)
        moved = max({*now, *before}, key=lambda c: abs(now.get(c, 0.0) - before.get(c, 0.0)))
        detail = f"{moved} {now.get(moved, 0.0):.0%} of the boxes, was {before.get(moved, 0.0):.0%}"
        findings.append(Finding("class mix", L_INFINITY, values[F.TEXT], class_linf, detail))
    if F.BOX_AREA in values:
        detail = (
            f"median box {_num(new, F.BOX_AREA, 'median'):.1%} of the image, "
            f"was {_num(reference, F.BOX_AREA, 'median'):.1%}"
        )
        findings.append(Finding("box size", JENSEN_SHANNON, values[F.BOX_AREA], box_size_jsd, detail))
    if F.BRIGHTNESS in values:
        detail = f"mean {_num(new, F.BRIGHTNESS, 'mean'):.0f}, was {_num(reference, F.BRIGHTNESS, 'mean'):.0f}"
        findings.append(Finding("brightness", JENSEN_SHANNON, values[F.BRIGHTNESS], brightness_jsd, detail))
    return findings


def brightness_skew(
    training: statistics_pb2.DatasetFeatureStatisticsList,
    serving: statistics_pb2.DatasetFeatureStatisticsList,
    threshold: float,
) -> Finding | None:
    """Serving-time brightness against the training data's (None when either lacks it)."""
    anomalies = tfdv.validate_statistics(training, _schema({}, {F.BRIGHTNESS: threshold}), serving_statistics=serving)
    values = _measurements(anomalies, "skew_measurements")
    if F.BRIGHTNESS not in values:
        return None
    serving_mean, training_mean = _num(serving, F.BRIGHTNESS, "mean"), _num(training, F.BRIGHTNESS, "mean")
    detail = f"serving mean {serving_mean:.0f}, training mean {training_mean:.0f}"
    return Finding("serving brightness", JENSEN_SHANNON, values[F.BRIGHTNESS], threshold, detail)


def new_classes(new: statistics_pb2.DatasetFeatureStatisticsList, known: Sequence[str]) -> dict[str, float]:
    """Classes of `new` the served model does not know, with their share of the new boxes."""
    return {name: share for name, share in class_shares(new).items() if name not in set(known)}
