"""COCO detection metrics as a TFMA metric: COCOeval's numbers, computed in one pass per slice.

TFMA's own `COCOMeanAveragePrecision` builds one confusion matrix per class,
IoU threshold and score threshold in pure Python per example: measured on
this machine, 77 images took about 150 s at 100 score thresholds (and its
mAP@0.5 was 0.012 off pycocotools; the default 10,000 thresholds would be
100x slower still), against 2.6 s for the same model and pycocotools in a
plain loop (docs/benchmarks.md). This metric keeps everything TFMA gives
(slicing, candidate/baseline comparison, value and change thresholds,
`tfma.load_eval_result`) but accumulates, per class, each detection's score
and whether it matched at each IoU threshold, and turns that into the
precision/recall curves in `extract_output`. Matching and accumulation follow
pycocotools' COCOeval (bbox, 100 detections per image) step by step
(cocoeval_match.py), so the numbers agree with it (tested).

Besides COCOeval's summary, it gives each class's AP@0.5 and mAP@0.5 over
COCO's small, medium and large objects (box area in pixels, from each
example's image size), with the ground-truth count behind each: the
Evaluator's slice floors judge these. TFMA's own `COCOAveragePrecision` takes
`class_id` and `area_range` as metric parameters too, not as slices: a TFMA
slice is a set of examples, and one image holds objects of several classes
and sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.utils import util as tfma_util

from detx.components.data import features as F
from detx.components.evaluation import cocoeval_match as cem
from detx.components.evaluation import score_profile

# Metric names, as they appear in TFMA's results and thresholds.
MAP = "map"  # AP at IoU .50:.95, COCO's primary metric
MAP_50 = "map_50"
MAP_75 = "map_75"
AR_100 = "ar_100"
NUM_GT_BOXES = "num_gt_boxes"
AP_PREFIX = "ap/"  # + class name: the class's AP at .50:.95
AP_50_PREFIX = "ap_50/"  # + class name: the class's AP at .50 (what class floors judge)
# Areas judged besides "all"; mAP@0.5 of each is `map_50/area=<size>`, its box count `num_gt_boxes/area=<size>`.
SIZES = cem.SIZES
_AREAS = ("all", *SIZES)

_GROUND_TRUTH_FEATURES = (F.YMIN, F.XMIN, F.YMAX, F.XMAX, F.LABEL, F.IS_CROWD, F.HEIGHT, F.WIDTH)


def class_ap_50_key(name: str) -> str:
    """The metric name of one class's AP at IoU 0.5."""
    return f"{AP_50_PREFIX}{name}"


def size_map_50_key(size: str) -> str:
    """The metric name of mAP@0.5 over COCO's "small", "medium" or "large" objects."""
    return f"{MAP_50}/area={size}"


def class_num_gt_key(name: str) -> str:
    """The metric name of a class's ground-truth count (boxes that are not crowd)."""
    return f"{NUM_GT_BOXES}/class={name}"


def size_num_gt_key(size: str) -> str:
    """The metric name of the ground-truth count in one of COCO's area ranges."""
    return f"{NUM_GT_BOXES}/area={size}"


def summarize(ap: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """COCOeval's summary numbers from [T, K] AP and recall arrays (-1 = class without ground truth)."""
    t75 = int(np.argmin(np.abs(cem.IOU_THRESHOLDS - 0.75)))
    return {
        MAP: cem.mean_valid(ap),
        MAP_50: cem.mean_valid(ap[cem.t50()]),
        MAP_75: cem.mean_valid(ap[t75]),
        AR_100: cem.mean_valid(recall),
    }


def _model_predictions(element: metric_types.StandardMetricInputs, model_name: str) -> dict[str, np.ndarray]:
    """The detector outputs of one model (TFMA nests them by model name when there is a baseline)."""
    predictions = element.predictions
    if model_name and isinstance(predictions, dict) and model_name in predictions:
        predictions = predictions[model_name]
    return predictions


class _CocoCombiner(beam.CombineFn):
    """Accumulates per-class matches of one model's detections; COCOeval's numbers on output."""

    def __init__(
        self,
        keys: dict[str, metric_types.MetricKey],
        model_name: str,
        class_ids: Sequence[int],
        class_names: Sequence[str],
    ) -> None:
        self._keys = keys
        self._model_name = model_name
        self._class_ids = list(class_ids)
        self._class_names = list(class_names)

    def create_accumulator(self) -> dict[tuple[int, str], cem.ClassAccumulator]:
        return {(k, a): cem.ClassAccumulator() for k in self._class_ids for a in _AREAS}

    def add_input(
        self, accumulator: dict[tuple[int, str], cem.ClassAccumulator], element: metric_types.StandardMetricInputs
    ) -> dict[tuple[int, str], cem.ClassAccumulator]:
        features = element.features
        gt_boxes = np.stack(
            [
                np.asarray(tfma_util.get_by_keys(features, [key]), dtype=np.float64).reshape(-1)
                for key in (F.YMIN, F.XMIN, F.YMAX, F.XMAX)
            ],
            axis=1,
        )
        gt_labels = np.asarray(tfma_util.get_by_keys(features, [F.LABEL]), dtype=np.int64).reshape(-1)
        crowd_value = tfma_util.get_by_keys(features, [F.IS_CROWD], optional=True)
        gt_crowd = (
            np.asarray(crowd_value, dtype=np.int64).reshape(-1).astype(bool)
            if crowd_value is not None and np.size(crowd_value) == len(gt_labels)
            else np.zeros(len(gt_labels), dtype=bool)
        )
        # Boxes are normalized; COCO's area ranges are in pixels of the image as stored.
        height, width = (
            float(np.asarray(tfma_util.get_by_keys(features, [key])).reshape(-1)[0]) for key in (F.HEIGHT, F.WIDTH)
        )
        predictions = _model_predictions(element, self._model_name)
        n = int(np.asarray(predictions["num_detections"]).reshape(-1)[0])
        det_boxes = np.asarray(predictions["detection_boxes"], dtype=np.float64).reshape(-1, 4)[:n]
        det_scores = np.asarray(predictions["detection_scores"], dtype=np.float64).reshape(-1)[:n]
        det_classes = np.rint(np.asarray(predictions["detection_classes"]).reshape(-1)[:n]).astype(np.int64)
        gt_area = _pixel_area(gt_boxes, height, width)
        det_area = _pixel_area(det_boxes, height, width)
        for k in self._class_ids:
            g, d = gt_labels == k, det_classes == k
            if not g.any() and not d.any():
                continue
            for a in _AREAS:
                # COCOeval's `_ignore`: crowd boxes, and boxes outside the area range.
                ignore = gt_crowd[g] | (cem.outside(gt_area[g], a) if a != "all" else False)
                scores, matched, ignored = cem.match_image(
                    det_boxes[d],
                    det_scores[d],
                    gt_boxes[g],
                    gt_crowd[g],
                    gt_ignore=ignore,
                    det_outside=cem.outside(det_area[d], a) if a != "all" else None,
                )
                accumulator[k, a].add(scores, matched, ignored, int((~ignore).sum()))
        return accumulator

    def merge_accumulators(
        self, accumulators: Iterable[dict[tuple[int, str], cem.ClassAccumulator]]
    ) -> dict[tuple[int, str], cem.ClassAccumulator]:
        merged = self.create_accumulator()
        for acc in accumulators:
            for key, part in acc.items():
                merged[key].merge(part)
        return merged

    def extract_output(
        self, accumulator: dict[tuple[int, str], cem.ClassAccumulator]
    ) -> dict[metric_types.MetricKey, float]:
        t50 = cem.t50()
        curves = {a: [cem.class_curves(accumulator[k, a]) for k in self._class_ids] for a in _AREAS}
        ap = np.stack([c[0] for c in curves["all"]], axis=1)  # [T, K]
        recall = np.stack([c[1] for c in curves["all"]], axis=1)
        values: dict[str, float] = summarize(ap, recall)
        values[NUM_GT_BOXES] = float(sum(accumulator[k, "all"].num_gt for k in self._class_ids))
        for j, (k, name) in enumerate(zip(self._class_ids, self._class_names, strict=True)):
            per_class = ap[:, j]
            has_gt = bool((per_class > -1).all())
            values[AP_PREFIX + name] = float(per_class.mean()) if has_gt else float("nan")
            values[class_ap_50_key(name)] = float(per_class[t50]) if has_gt else float("nan")
            values[class_num_gt_key(name)] = float(accumulator[k, "all"].num_gt)
        for size in SIZES:
            values[size_map_50_key(size)] = cem.mean_valid(np.array([c[0][t50] for c in curves[size]]))
            values[size_num_gt_key(size)] = float(sum(accumulator[k, size].num_gt for k in self._class_ids))
        return {self._keys[name]: value for name, value in values.items()}


def _pixel_area(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """Areas in pixels of normalized [ymin, xmin, ymax, xmax] boxes (COCOeval's bbox `area`: w * h)."""
    return (boxes[:, 2] - boxes[:, 0]) * height * (boxes[:, 3] - boxes[:, 1]) * width


class _ScoreProfileCombiner(beam.CombineFn):
    """Sums each image's top score and confident detections (score_profile.py); means on output."""

    def __init__(self, keys: dict[str, metric_types.MetricKey], model_name: str) -> None:
        self._keys = keys
        self._model_name = model_name

    def create_accumulator(self) -> list[float]:
        return [0.0, 0.0, 0.0]  # images, sum of top scores, sum of confident detections

    def add_input(self, accumulator: list[float], element: metric_types.StandardMetricInputs) -> list[float]:
        predictions = _model_predictions(element, self._model_name)
        n = int(np.asarray(predictions["num_detections"]).reshape(-1)[0])
        top, confident = score_profile.image_profile(predictions["detection_scores"], n)
        accumulator[0] += 1
        accumulator[1] += top
        accumulator[2] += confident
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[float]]) -> list[float]:
        return [float(sum(values)) for values in zip(*accumulators, strict=True)]

    def extract_output(self, accumulator: list[float]) -> dict[metric_types.MetricKey, float]:
        images = accumulator[0] or float("nan")
        return {
            self._keys[score_profile.TOP_SCORE]: accumulator[1] / images,
            self._keys[score_profile.DETECTIONS]: accumulator[2] / images,
        }


def _coco_computations(
    class_ids: Sequence[int] = (),
    class_names: Sequence[str] = (),
    name: str = "coco",
    model_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    sub_keys: Sequence[Any] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    del name, sub_keys  # one computation per model; class AP has its own keys
    if len(class_ids) != len(class_names) or not class_ids:
        raise ValueError("COCODetectionMetrics needs class_ids and class_names of the same, non-zero length")
    names = [
        MAP,
        MAP_50,
        MAP_75,
        AR_100,
        NUM_GT_BOXES,
        *(AP_PREFIX + n for n in class_names),
        *(class_ap_50_key(n) for n in class_names),
        *(class_num_gt_key(n) for n in class_names),
        *(size_num_gt_key(s) for s in SIZES),
        *(size_map_50_key(s) for s in SIZES),
    ]
    profile_names = [score_profile.TOP_SCORE, score_profile.DETECTIONS]
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = {
                # Unweighted keys carry example_weighted=None, the form TFMA gives
                # thresholds declared in MetricsSpec, so thresholds find them.
                n: metric_types.MetricKey(
                    name=n, model_name=model_name, output_name=output_name, example_weighted=example_weighted or None
                )
                for n in [*names, *profile_names]
            }
            coco_keys = {n: keys[n] for n in names}
            profile_keys = {n: keys[n] for n in profile_names}
            computations.append(
                metric_types.MetricComputation(
                    keys=list(coco_keys.values()),
                    # Only what the combiner reads travels through the pipeline (not the image bytes).
                    preprocessors=[
                        metric_types.StandardMetricInputsPreprocessor(
                            include_filter={
                                tfma_constants.FEATURES_KEY: {key: {} for key in _GROUND_TRUTH_FEATURES},
                                tfma_constants.PREDICTIONS_KEY: {},
                            },
                            include_default_inputs=False,
                        )
                    ],
                    combiner=_CocoCombiner(coco_keys, model_name, class_ids, class_names),
                )
            )
            computations.append(
                metric_types.MetricComputation(
                    keys=list(profile_keys.values()),
                    preprocessors=[
                        metric_types.StandardMetricInputsPreprocessor(
                            include_filter={tfma_constants.PREDICTIONS_KEY: {}}, include_default_inputs=False
                        )
                    ],
                    combiner=_ScoreProfileCombiner(profile_keys, model_name),
                )
            )
    return computations


class COCODetectionMetrics(metric_types.Metric):
    """COCO bbox mAP@[.5:.95], mAP@.5, mAP@.75, AR@100 and AP per class, as pycocotools computes them.

    Ground truth comes from the OD API features of each tf.Example, detections
    from the model's Zoo-format outputs (`detection_boxes`, `detection_scores`,
    `detection_classes` with 1-based ids, `num_detections`).
    """

    def __init__(self, class_ids: Sequence[int] = (), class_names: Sequence[str] = (), name: str = "coco") -> None:
        """Builds the metric.

        Args:
            class_ids: the label map's ids (1-based).
            class_names: their names, in the same order (keys `ap/<name>`).
            name: unused in results (each number has its own key); kept for TFMA's config.
        """
        super().__init__(_coco_computations, class_ids=list(class_ids), class_names=list(class_names), name=name)


metric_types.register_metric(COCODetectionMetrics)
