"""Floors on the slices that matter: each class's AP@0.5 and mAP@0.5 on COCO's small, medium and large objects.

The floors are TFMA value thresholds on the COCO metric's `ap_50/<class>` and
`map_50/area=<size>` numbers (eval_config.py), judged on the whole split;
TFMA's validator decides. One case is the Evaluator's own: a class or size
with no box in the eval split has no AP (COCOeval's -1; the metric reports
NaN and a box count of 0), and TFMA's validator fails NaN against any lower bound
(`metric >= lower_bound` is False; tensorflow_model_analysis/evaluators/
metrics_validator.py, `_check_threshold`). Such a failure is read as "not
judged: no ground truth", never as a failed run, and the report says so.
TFMA's own `COCOAveragePrecision` could not tell: for a class without ground
truth its precision-at-recall finds no feasible point and returns 0.0
(`confusion_matrix_metrics._find_max_under_constraint`), the same AP as a
class never detected.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from detx.components.evaluation import tfma_coco
from detx.components.evaluation.cocoeval_match import AREA_RANGES
from detx.components.evaluator.options import EvaluatorOptions

PASSED = "passed"
FAILED = "failed"
NO_GROUND_TRUTH = "not judged: no box in the eval split"


@dataclasses.dataclass(frozen=True)
class Floor:
    """One floor: the metric it judges, the box count behind it, and how people read it."""

    metric: str
    count_metric: str
    label: str
    floor: float
    quantity: str = "AP@0.5"


def floors(options: EvaluatorOptions, class_names: list[str]) -> list[Floor]:
    """The configured floors, classes first (in label-map order), then sizes (small, medium, large).

    Raises:
        ValueError: a class floor names a class the label map does not have.
    """
    out = [
        Floor(tfma_coco.class_ap_50_key(name), tfma_coco.class_num_gt_key(name), f"class {name!r}", floor)
        for name, floor in options.class_floors(class_names).items()
    ]
    for size in tfma_coco.SIZES:
        if size in options.area_ap_floors:
            low, high = (math.sqrt(v) for v in AREA_RANGES[size])
            what = f"area <= {high:.0f}² px" if size == "small" else f"area {low:.0f}² to {high:.0f}² px"
            if size == "large":
                what = f"area >= {low:.0f}² px"
            out.append(
                Floor(
                    tfma_coco.size_map_50_key(size),
                    tfma_coco.size_num_gt_key(size),
                    f"{size} objects ({what})",
                    options.area_ap_floors[size],
                    quantity="mAP@0.5",
                )
            )
    return out


def check(
    configured: list[Floor], metrics: dict[str, float], failed_metrics: set[str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Reads TFMA's verdict on each floor.

    Args:
        configured: the floors.
        metrics: the candidate's metrics on the whole split.
        failed_metrics: names of the metrics TFMA's validation failed on the whole split.

    Returns:
        Per floor label, {metric, value, floor, boxes, status}; and one sentence per failed floor.
    """
    results: dict[str, dict[str, Any]] = {}
    reasons = []
    for f in configured:
        value = metrics.get(f.metric, math.nan)
        boxes = int(metrics.get(f.count_metric, 0) or 0)
        if f.metric not in failed_metrics:
            status = PASSED
        elif boxes == 0:
            status = NO_GROUND_TRUTH
        else:
            status = FAILED
            reasons.append(f"{f.quantity} of {f.label} {value:.3f} is below its floor {f.floor:.3f} ({boxes} boxes)")
        results[f.label] = {"metric": f.metric, "value": value, "floor": f.floor, "boxes": boxes, "status": status}
    return results, reasons
