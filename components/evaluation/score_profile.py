"""The score profile of a detector's outputs: what the model server logs and the Evaluator measures alike.

Live traffic has no labels, so mAP cannot be watched in production; how
confident the model is can. Both sides compute the same two numbers per
image, so the served model's figures on its eval split (in its lineage) are
the reference its live figures are compared with (`detx ct check`).
"""

from __future__ import annotations

import numpy as np

TOP_SCORE = "score/top_mean"  # mean over images of the highest detection score (0 for none)
DETECTIONS = "score/detections_per_image"  # mean count of detections scoring at least CONFIDENT
CONFIDENT = 0.5


def image_profile(scores: np.ndarray, num_detections: int | None = None) -> tuple[float, int]:
    """The top score and the number of confident detections of one image.

    Args:
        scores: the image's detection scores (any order; padding after `num_detections`).
        num_detections: how many of `scores` are real (None: all).
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if num_detections is not None:
        values = values[: max(int(num_detections), 0)]
    if values.size == 0:
        return 0.0, 0
    return float(values.max()), int((values >= CONFIDENT).sum())
