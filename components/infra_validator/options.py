"""The InfraValidator's settings and how they travel as an exec property (plain data, no TensorFlow)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# The exec property carrying the options as JSON.
OPTIONS = "options"
# Which model server to start: TF Serving's binary when it is on PATH, else `detx serve`.
SERVERS = ("auto", "tensorflow_model_server", "detx serve")


@dataclasses.dataclass(frozen=True)
class InfraValidatorOptions:
    """How a candidate is checked in a model server, and the budgets it must meet.

    Attributes:
        server: "auto" (`tensorflow_model_server` if on PATH, else `detx serve`), or one of them by name.
        examples: eval-split examples to build requests from; each gives one request per
            signature, and the same requests become the version's TF Serving warm-up file.
        load_requests: requests sent to measure latency (after the first one).
        concurrency: clients sending them at once.
        max_load_seconds: the server must make the version AVAILABLE within this (from process start).
        max_p99_ms: budget on the 99th percentile latency under load (0: no budget).
        max_memory_mb: budget on the server process's peak resident memory (0: no budget).
        tolerance: largest difference allowed between a served and an in-process answer,
            on scores and on box corners (normalized coordinates).
    """

    server: str = "auto"
    examples: int = 4
    load_requests: int = 60
    concurrency: int = 2
    max_load_seconds: float = 300.0
    max_p99_ms: float = 2000.0
    max_memory_mb: float = 8192.0
    tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.server not in SERVERS:
            raise ValueError(f"infra_validator.server must be one of {', '.join(SERVERS)}, got {self.server!r}")
        if self.examples < 1 or self.load_requests < 1 or self.concurrency < 1:
            raise ValueError("infra_validator.examples, load_requests and concurrency must be >= 1")
        if self.max_load_seconds <= 0 or self.max_p99_ms < 0 or self.max_memory_mb < 0 or self.tolerance < 0:
            raise ValueError("infra_validator budgets must be >= 0 (max_load_seconds > 0)")

    def budgets(self) -> dict[str, float]:
        """The budgets a candidate must meet, by name (0 means none)."""
        return {
            "max_load_seconds": self.max_load_seconds,
            "max_p99_ms": self.max_p99_ms,
            "max_memory_mb": self.max_memory_mb,
            "tolerance": self.tolerance,
        }

    def to_json(self) -> str:
        """The exec property's value."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> InfraValidatorOptions:
        """Reads the exec property back."""
        values: dict[str, Any] = json.loads(text or "{}")
        return cls(**values)
