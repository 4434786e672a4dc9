"""The TFLite step's settings, and how they travel as exec properties (each its own, so KFP can set any)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

FLOAT32, FLOAT16, INT8 = "float32", "float16", "int8"
KINDS = (FLOAT32, FLOAT16, INT8)


@dataclasses.dataclass(frozen=True)
class TFLiteOptions:
    """How the TFLite models are made and checked.

    Attributes:
        enabled: add the step to the pipeline (off by default: not every team ships to devices;
            `detx export tflite` converts any exported model on demand). Not an exec property.
        calibration_examples: train-split images int8 calibration runs on (a seeded sample).
        max_int8_map50_drop: the int8 model ships only if its mAP@0.5 is at most this much
            below the SavedModel's (on the eval split, the same images and metric code).
        use_regular_nms: per-class NMS, as detx's own post-processing (the default), which TFLite's
            kernel gets right only on one thread; False: the op's class-agnostic fast NMS, as the OD
            API exports it, right on any number of threads but less accurate (see postprocess_op.py).
        num_threads: CPU threads of TFLite's interpreter when evaluating.
        seed: seeds the calibration sample.
    """

    enabled: bool = False
    calibration_examples: int = 100
    max_int8_map50_drop: float = 0.02
    use_regular_nms: bool = True
    num_threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration_examples < 1:
            raise ValueError(f"calibration_examples must be at least 1, got {self.calibration_examples}")
        if not 0.0 <= self.max_int8_map50_drop <= 1.0:
            raise ValueError(f"max_int8_map50_drop must be within [0, 1], got {self.max_int8_map50_drop}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {self.num_threads}")

    def exec_properties(self) -> dict[str, Any]:
        """The component's exec properties: one per field (booleans as 0/1, which TFX properties carry)."""
        values = dataclasses.asdict(self)
        values.pop("enabled")  # decides whether the step exists, not how it runs
        values["use_regular_nms"] = int(self.use_regular_nms)
        return values

    @classmethod
    def from_exec_properties(cls, exec_properties: Mapping[str, Any]) -> TFLiteOptions:
        """Reads the options back in the executor (absent ones keep their defaults)."""
        defaults = cls()
        return cls(
            calibration_examples=int(exec_properties.get("calibration_examples", defaults.calibration_examples)),
            max_int8_map50_drop=float(exec_properties.get("max_int8_map50_drop", defaults.max_int8_map50_drop)),
            use_regular_nms=bool(int(exec_properties.get("use_regular_nms", int(defaults.use_regular_nms)))),
            num_threads=int(exec_properties.get("num_threads", defaults.num_threads)),
            seed=int(exec_properties.get("seed", defaults.seed)),
        )
