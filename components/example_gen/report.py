"""Ingestion summary and quarantine limit: the counts a user sees after DetectionExampleGen."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from detx.components.data.images import NOTE_SEPARATOR, UPRIGHT_NOTE_PREFIX
from detx.components.data.records import Reject

QUARANTINE_FILENAME = "quarantine.jsonl"
SUMMARY_FILENAME = "ingest_summary.json"
_SHOWN_REJECTS = 10


def format_spans(spans: Sequence[int]) -> str:
    """Spans for people: `3`, `2-4` (consecutive) or `1, 3, 4`."""
    spans = sorted(spans)
    if len(spans) > 1 and spans == list(range(spans[0], spans[-1] + 1)):
        return f"{spans[0]}-{spans[-1]}"
    return ", ".join(map(str, spans))


def describe_spans(spans: Sequence[int]) -> str:
    """`span 3`, `spans 2-4`, `spans 1, 3`."""
    return f"{'span' if len(spans) == 1 else 'spans'} {format_spans(spans)}"


def _split_conversions(notes: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(RGB conversions per kind, photos turned upright per EXIF orientation) from the executor's notes.

    A note is "converted:<conversion>", where one image's conversion may join
    several kinds with "+" (`images.normalize_image`), e.g. "converted:jpeg/cmyk->rgb+exif/6->upright".
    """
    conversions: Counter[str] = Counter()
    exif_rotated: Counter[str] = Counter()
    for key, count in notes.items():
        if not key.startswith("converted:"):
            continue
        for kind in key.split(":", 1)[1].split(NOTE_SEPARATOR):
            if kind.startswith(UPRIGHT_NOTE_PREFIX):
                exif_rotated[kind[len(UPRIGHT_NOTE_PREFIX) :].split("->", 1)[0]] += int(count)
            elif kind:
                conversions[kind] += int(count)
    return dict(sorted(conversions.items())), dict(sorted(exif_rotated.items()))


class QuarantineLimitExceeded(RuntimeError):
    """Too large a share of the dataset was quarantined: the run stops before anything trains on it."""


@dataclasses.dataclass(frozen=True)
class IngestSummary:
    """Counts of one ingestion.

    Attributes:
        data_format: the source format.
        input_base: where the data came from.
        num_records: records in the source (images, plus orphan annotations).
        num_examples: tf.Examples written.
        num_boxes: boxes in the written examples.
        num_rejected: records quarantined.
        rejects_by_reason: quarantined records per reason.
        conversions: images re-encoded to RGB, per kind (e.g. "png/rgba->rgb").
        boxes_clipped: boxes clipped to the image within the tolerance.
        category_ids: source category key to label id.
        max_rejected_fraction: the configured limit.
        first_rejects: the first rejects, for messages.
        spans: the spans read (empty when the input is not a span root).
        exif_rotated: photos stored upright because their boxes were drawn on the photo as
            displayed, per EXIF orientation ("6": rotated 90 degrees clockwise to display).
        source_notes: what the reader decided about the dataset (`Scan.notes`): the
            format `--format auto` found, where the images were, ...
    """

    data_format: str
    input_base: str
    num_records: int
    num_examples: int
    num_boxes: int
    num_rejected: int
    rejects_by_reason: dict[str, int]
    conversions: dict[str, int]
    boxes_clipped: int
    category_ids: dict[str, int]
    max_rejected_fraction: float
    first_rejects: tuple[Reject, ...] = ()
    spans: tuple[int, ...] = ()
    exif_rotated: dict[str, int] = dataclasses.field(default_factory=dict)
    source_notes: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        data_format: str,
        input_base: str,
        num_records: int,
        rejects: Sequence[Reject],
        notes: Mapping[str, int],
        category_ids: dict[str, int],
        max_rejected_fraction: float,
        spans: Sequence[int] = (),
        source_notes: Sequence[str] = (),
    ) -> IngestSummary:
        """Assembles the summary from the rejects and the summed conversion notes."""
        ordered = sorted(rejects, key=lambda r: (r.image_id, r.file))
        conversions, exif_rotated = _split_conversions(notes)
        return cls(
            data_format=data_format,
            input_base=input_base,
            num_records=num_records,
            num_examples=int(notes.get("examples", 0)),
            num_boxes=int(notes.get("boxes", 0)),
            num_rejected=len(rejects),
            rejects_by_reason=dict(sorted(Counter(r.reason.value for r in rejects).items())),
            conversions=conversions,
            boxes_clipped=int(notes.get("boxes_clipped", 0)),
            category_ids=category_ids,
            max_rejected_fraction=max_rejected_fraction,
            first_rejects=tuple(ordered[:_SHOWN_REJECTS]),
            spans=tuple(spans),
            exif_rotated=exif_rotated,
            source_notes=tuple(source_notes),
        )

    @property
    def rejected_fraction(self) -> float:
        """Share of the source's records that were quarantined."""
        return self.num_rejected / self.num_records if self.num_records else 0.0

    @property
    def over_limit(self) -> bool:
        """True when the quarantined share passes the limit."""
        return self.rejected_fraction > self.max_rejected_fraction

    def one_line(self) -> str:
        """A one-line account, e.g. for logs."""
        reasons = ", ".join(f"{k}={v}" for k, v in self.rejects_by_reason.items()) or "none"
        spans = f"{describe_spans(self.spans)}: " if self.spans else ""
        # Said only when it happened, so a dataset without phone photos reads as before.
        rotated = sum(self.exif_rotated.values())
        upright = f"{rotated} photos turned upright from their EXIF orientation; " if rotated else ""
        return (
            f"{spans}{self.num_examples} examples with {self.num_boxes} boxes from {self.num_records} "
            f"{self.data_format} records; {self.num_rejected} quarantined ({self.rejected_fraction:.1%}; {reasons}); "
            f"{sum(self.conversions.values())} images converted to RGB; {upright}{self.boxes_clipped} boxes clipped"
            + "".join(f"; {note}" for note in self.source_notes)
        )

    def limit_message(self, quarantine_path: str) -> str:
        """The error a user sees when the limit stops the run."""
        lines = [
            f"{self.num_rejected} of {self.num_records} records ({self.rejected_fraction:.1%}) were quarantined, "
            f"more than the limit of {self.max_rejected_fraction:.1%}; the run stopped before validation "
            "and training.",
            "Reasons: " + ", ".join(f"{k}: {v}" for k, v in self.rejects_by_reason.items()),
        ]
        lines += [f"  {r.reason.value}: {r.detail}" for r in self.first_rejects]
        if self.num_rejected > len(self.first_rejects):
            lines.append(f"  ... and {self.num_rejected - len(self.first_rejects)} more")
        lines.append(
            f"Every rejected record is listed in {quarantine_path}. Fix or remove those records, or, if this "
            "share is acceptable, raise the limit (--max-rejected-fraction)."
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the sample of rejects, which the quarantine file holds)."""
        d = dataclasses.asdict(self)
        d.pop("first_rejects")
        d["rejected_fraction"] = self.rejected_fraction
        return d

    def to_json(self) -> str:
        """Serializes the summary."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IngestSummary:
        """Reads a summary written by `to_json`."""
        d = json.loads(text)
        d.pop("rejected_fraction", None)
        d["spans"] = tuple(d.get("spans", ()))
        d["source_notes"] = tuple(d.get("source_notes", ()))
        return cls(**d)

    def set_custom_properties(self, artifact: Any) -> None:
        """Records the counts on the Examples artifact, so ML Metadata holds them too."""
        artifact.set_int_custom_property("detx_num_records", self.num_records)
        artifact.set_int_custom_property("detx_num_examples", self.num_examples)
        artifact.set_int_custom_property("detx_num_boxes", self.num_boxes)
        artifact.set_int_custom_property("detx_num_rejected", self.num_rejected)
        artifact.set_string_custom_property("detx_data_format", self.data_format)
        if self.spans:
            artifact.set_string_custom_property("detx_spans", ",".join(map(str, self.spans)))
