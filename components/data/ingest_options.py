"""How a dataset is read and checked (DetectionExampleGen's settings), and how they travel in TFX's `custom_config`.

Plain data code (no TFX import): `detx ct check` reads datasets with the same
options as the ExampleGen, without loading TFX or Beam.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from google.protobuf import any_pb2, wrappers_pb2

# The formats a dataset can be in (and `detx data synth` can write).
FORMATS = ("coco", "voc", "yolo", "tfrecord")
# `--format auto`: the ExampleGen detects the format from the folder when it
# runs (`sources.detect_format`), so it works where the data root is only known
# then (a Kubeflow run parameter).
AUTO = "auto"
# What `--format` accepts on input.
INPUT_FORMATS = (AUTO, *FORMATS)

# Where each format's annotations are, relative to the input base: this is the
# ExampleGen's input split pattern, which also fingerprints the input for caching.
# YOLO's data.yaml names the classes; the label files are found beside it.
# `auto` cannot name one format's files, so it fingerprints the folder's
# top-level entries (files and folders, by size and modification time).
DEFAULT_PATTERNS = {
    "coco": "annotations.json",
    "voc": "Annotations/*.xml",
    "yolo": "data.yaml",
    "tfrecord": "*.*record*",
    AUTO: "*",
}


@dataclasses.dataclass(frozen=True)
class IngestOptions:
    """How DetectionExampleGen reads and checks a dataset.

    Attributes:
        data_format: "auto" (detect from the folder when the ExampleGen runs),
            "coco", "voc", "yolo" or "tfrecord".
        image_dir: folder of the images relative to the input base ("" picks
            the format's convention: images/ for COCO, JPEGImages/ for VOC).
        max_rejected_fraction: the run fails when more than this share of the
            records is quarantined (0.01 = 1%).
        max_pixels: larger images are quarantined.
        clip_tolerance_px: boxes may overshoot the image by this much and are clipped.
        span_window: 0: the input base is one dataset. N >= 1: it is a data
            root of `span-<n>/` folders (components/data/spans.py) and a run
            reads the newest span (or the run's span) and the N - 1 before it.
        span_pattern: with spans, the annotation files inside each span folder
            ("" is the format's convention); `image_dir` is relative to the span folder too.
    """

    data_format: str = AUTO
    image_dir: str = ""
    max_rejected_fraction: float = 0.01
    max_pixels: int = 40_000_000
    clip_tolerance_px: float = 2.0
    span_window: int = 0
    span_pattern: str = ""

    def __post_init__(self) -> None:
        if self.data_format not in INPUT_FORMATS:
            raise ValueError(f"unknown data format {self.data_format!r}; choose one of {', '.join(INPUT_FORMATS)}")
        if not 0.0 <= self.max_rejected_fraction <= 1.0:
            raise ValueError(f"max_rejected_fraction must be in [0, 1], got {self.max_rejected_fraction}")
        if self.span_window < 0:
            raise ValueError(f"span_window must be 0 (no spans) or more, got {self.span_window}")
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")

    @property
    def inner_pattern(self) -> str:
        """With spans: the annotation files inside a span folder."""
        return self.span_pattern or DEFAULT_PATTERNS[self.data_format]

    @property
    def resolved_image_dir(self) -> str:
        """The image folder, with the format's default filled in (YOLO's images/ folders are found by the reader)."""
        return self.image_dir or {"coco": "images", "voc": "JPEGImages"}.get(self.data_format, "")

    def to_custom_config(self) -> any_pb2.Any:
        """The options for `example_gen_pb2.CustomConfig.custom_config`: their JSON in a StringValue.

        JSON text rather than a protobuf Struct, whose numbers are all doubles:
        `max_pixels` and `span_window` stay integers all the way to the executor.
        """
        packed = any_pb2.Any()
        packed.Pack(wrappers_pb2.StringValue(value=json.dumps(dataclasses.asdict(self), sort_keys=True)))
        return packed

    @classmethod
    def from_custom_config(cls, custom_config_json: str | None) -> IngestOptions:
        """Reads the options back from the executor's `custom_config` exec property (the CustomConfig as JSON)."""
        if not custom_config_json:
            return cls()
        doc: dict[str, Any] = json.loads(custom_config_json)
        packed = doc.get("customConfig") or doc.get("custom_config") or {}
        return cls(**json.loads(packed.get("value") or "{}"))
