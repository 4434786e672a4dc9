"""Which TFLite models ship: float models always; int8 only if it keeps the SavedModel's accuracy."""

from __future__ import annotations

import dataclasses

from detx.components.tflite.options import INT8


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether a model ships, and why (a sentence for the run summary)."""

    ship: bool
    reason: str


def decide(kind: str, saved_map_50: float | None, map_50: float | None, max_int8_map50_drop: float) -> Decision:
    """The gate for one model.

    Example: with the SavedModel at mAP@0.5 0.700 and `max_int8_map50_drop`
    0.02, an int8 model at 0.685 ships (0.015 below) and one at 0.650 does not
    (0.050 below); a float model ships whatever its mAP.

    Args:
        kind: "float32", "float16" or "int8".
        saved_map_50: the SavedModel's mAP@0.5 on the eval split (None: not evaluated).
        map_50: the TFLite model's, on the same images with the same code (None: not evaluated).
        max_int8_map50_drop: how far below the SavedModel an int8 model may be.
    """
    if kind != INT8:
        return Decision(True, "float models always ship")
    if saved_map_50 is None or map_50 is None:
        return Decision(True, "not evaluated (no eval data): the accuracy gate did not run")
    drop = saved_map_50 - map_50
    detail = f"int8 mAP@0.5 {map_50:.3f} is {drop:.3f} below the SavedModel's {saved_map_50:.3f}"
    # A hair of float rounding must not turn an exact tie with the limit into a refusal.
    if drop <= max_int8_map50_drop + 1e-9:
        return Decision(True, f"{detail}; the allowed drop is {max_int8_map50_drop:.3f}")
    return Decision(
        False,
        f"{detail}, more than the allowed {max_int8_map50_drop:.3f}: not shipped (the float models are). "
        "Calibrate on more, or more typical, train images (calibration_examples), or ship float16",
    )
