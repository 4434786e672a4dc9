"""Batch inference settings (`detx infer` and DetectionBulkInferrer), and how they travel as exec properties."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from detx.components.data.ingest_options import IngestOptions


@dataclasses.dataclass(frozen=True)
class BulkInferenceOptions:
    """How a batch-inference job scores images.

    Attributes:
        enabled: add DetectionBulkInferrer to the pipeline (off by default: scoring the newest span
            costs a pass over its images; `detx infer` scores any folder on demand). Not an exec property.
        min_score: detections below this score are left out of the results. 0 keeps every detection
            the model returns: the review queue ranks images by their least confident boxes too.
        batch_size: images per SavedModel call (beam.BatchElements' largest batch).
        shard_size: images per output shard, the unit a re-run skips when it is already written.
        max_pixels: larger images are skipped (the ingestion limit, `IngestOptions.max_pixels`).
    """

    enabled: bool = False
    min_score: float = 0.0
    batch_size: int = 16
    shard_size: int = 256
    max_pixels: int = IngestOptions.max_pixels

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be within [0, 1], got {self.min_score}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {self.shard_size}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")

    def exec_properties(self) -> dict[str, Any]:
        """The component's exec properties: one per field but `enabled`, which decides whether the step exists."""
        values = dataclasses.asdict(self)
        values.pop("enabled")
        return values

    @classmethod
    def from_exec_properties(cls, exec_properties: Mapping[str, Any]) -> BulkInferenceOptions:
        """Reads the options back in the executor (absent ones keep their defaults)."""
        defaults = cls()
        return cls(
            min_score=float(exec_properties.get("min_score", defaults.min_score)),
            batch_size=int(exec_properties.get("batch_size", defaults.batch_size)),
            shard_size=int(exec_properties.get("shard_size", defaults.shard_size)),
            max_pixels=int(exec_properties.get("max_pixels", defaults.max_pixels)),
        )
