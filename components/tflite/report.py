"""The TFLite step's report, `tflite_report.json`: each model, its mAP@0.5, its size, and whether it ships and why.

    {
      "format": 1,
      "saved_model": {"path": ..., "preset": "tiny", "variables_bytes": 1822310,
                      "map_50": 0.712, "map": 0.41},
      "eval_examples": 160, "calibration_examples": 100,
      "settings": {"use_regular_nms": true, "max_int8_map50_drop": 0.02, ...},
      "models": [
        {"kind": "float32", "file": "detector_float32.tflite", "size_bytes": 2112761,
         "size_ratio": 1.16, "map_50": 0.712, "map": 0.41, "map_50_drop": 0.0,
         "shipped": true, "reason": "float models always ship"},
        {"kind": "int8", "file": "rejected/detector_int8.tflite", ..., "shipped": false,
         "reason": "int8 mAP@0.5 0.650 is 0.062 below the SavedModel's 0.712, more than ..."}
      ]
    }

`file` is relative to the folder the report is in; a model that does not ship
lies under `rejected/`, so copying the folder's top-level `*.tflite` files ships
exactly the shipped ones. mAP values are null when no eval data was given.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

REPORT_FILE = "tflite_report.json"
REJECTED_DIR = "rejected"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One TFLite model in the report."""

    kind: str
    file: str
    size_bytes: int
    size_ratio: float
    map_50: float | None
    map: float | None
    map_50_drop: float | None
    shipped: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class TFLiteReport:
    """What was built from which SavedModel, how well each model detects, and what ships."""

    saved_model: dict[str, Any]
    eval_examples: int
    calibration_examples: int
    settings: dict[str, Any]
    models: list[ModelEntry]

    def shipped(self) -> list[ModelEntry]:
        """The models that ship."""
        return [m for m in self.models if m.shipped]

    def to_json(self) -> str:
        """The report as JSON text."""
        body = {"format": FORMAT, **dataclasses.asdict(self)}
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    def write(self, directory: str) -> str:
        """Writes `tflite_report.json` into `directory` and returns its path."""
        path = os.path.join(directory, REPORT_FILE)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(self.to_json())
        return path

    @classmethod
    def read(cls, directory: str) -> TFLiteReport:
        """Reads the report of a folder of TFLite models (a TFLiteModels artifact or `detx export tflite`'s output)."""
        with tf.io.gfile.GFile(os.path.join(directory, REPORT_FILE)) as f:
            body = json.load(f)
        body.pop("format", None)
        return cls(**{**body, "models": [ModelEntry(**m) for m in body["models"]]})

    def summary_lines(self) -> list[str]:
        """One line per model, for a run summary or a terminal."""
        saved = self.saved_model
        head = f"SavedModel ({saved['preset']}): variables {saved['variables_bytes'] / 1e6:.2f} MB"
        if saved.get("map_50") is not None:
            head += f", mAP@0.5 {saved['map_50']:.3f} on {self.eval_examples} eval images"
        lines = [head]
        for m in self.models:
            accuracy = f"mAP@0.5 {m.map_50:.3f}" if m.map_50 is not None else "mAP@0.5 not evaluated"
            verdict = "shipped" if m.shipped else "NOT shipped"
            lines.append(
                f"{m.kind:8s} {m.size_bytes / 1e6:6.2f} MB ({m.size_ratio:.2f}x)  {accuracy}  {verdict}: {m.reason}"
            )
        return lines
