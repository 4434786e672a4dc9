"""The InfraValidator's verdict: TFX's InfraBlessing files plus `detx_infra_validation.json` with the figures."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

REPORT_FILENAME = "detx_infra_validation.json"
# TFX's InfraBlessing layout (tfx/components/infra_validator/executor.py): an empty marker
# file, and the custom properties `blessed` and `has_model` (the Pusher pushes the model
# inside the blessing, `stamped_model/`, which carries the warm-up file).
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
BLESSED_KEY = "blessed"
HAS_MODEL_KEY = "has_model"


@dataclasses.dataclass(frozen=True)
class InfraReport:
    """What the InfraValidator measured and decided.

    Attributes:
        blessed: whether the candidate may be pushed.
        reasons: one sentence per failed check (empty when blessed).
        server: the model server that ran ("tensorflow_model_server", "detx serve"; "" when none started).
        load_seconds: from starting the server to the version being AVAILABLE.
        first_request_ms: the first request after that.
        p50_ms, p99_ms: latency of `requests` requests at `concurrency`.
        concurrency: clients at once.
        requests: requests answered in the load run.
        peak_memory_mb: the server process's peak resident memory.
        max_abs_diff: the largest score or box difference between served and in-process answers.
        signatures: the signatures checked.
        warmup_records: PredictionLog records in the warm-up file written into the model.
        budgets: the budgets applied (0: none).
    """

    blessed: bool
    reasons: list[str]
    server: str = ""
    load_seconds: float | None = None
    first_request_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    concurrency: int = 0
    requests: int = 0
    peak_memory_mb: float | None = None
    max_abs_diff: float | None = None
    signatures: list[str] = dataclasses.field(default_factory=list)
    warmup_records: int = 0
    budgets: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (what the Pusher records in the lineage)."""
        return dataclasses.asdict(self)

    def write(self, directory: str) -> str:
        """Writes the report and TFX's marker file into `directory`; returns the report's path."""
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, BLESSED_FILE if self.blessed else NOT_BLESSED_FILE), "w") as f:
            f.write("")
        path = os.path.join(directory, REPORT_FILENAME)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def read(cls, directory: str) -> InfraReport:
        """Reads the report of an InfraBlessing directory."""
        with tf.io.gfile.GFile(os.path.join(directory, REPORT_FILENAME)) as f:
            data: dict[str, Any] = json.load(f)
        return cls(**data)

    def verdict(self) -> str:
        """One line: what ran and what it found."""
        if not self.server:
            return "not infra-blessed: " + "; ".join(self.reasons)
        figures = (
            f"loaded in {self.load_seconds or 0:.1f} s, first request {self.first_request_ms or 0:.0f} ms, "
            f"p50 {self.p50_ms or 0:.0f} ms, p99 {self.p99_ms or 0:.0f} ms at concurrency {self.concurrency}, "
            f"peak memory {self.peak_memory_mb or 0:.0f} MB"
        )
        if self.blessed:
            return f"infra-blessed on {self.server}: {figures}"
        return f"not infra-blessed on {self.server}: " + "; ".join(self.reasons) + f" ({figures})"
