"""The TFMA COCO metric's matching and accumulation give pycocotools' numbers, edge cases included."""

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from detx.components.data import features as F
from detx.components.evaluation import tfma_coco
from detx.components.evaluation.coco_metrics import coco_eval

CLASSES = [1, 2, 3]
SIZE = 400.0  # pixel size of every image: boxes of 0.05-0.3 (20-120 px a side) span small, medium and large
NAMES = ["circle", "square", "triangle"]


def _random_image(rng, num_gt, num_dets, crowd_p=0.0):
    def boxes(n):
        y, x = rng.uniform(0, 0.7, n), rng.uniform(0, 0.7, n)
        h, w = rng.uniform(0.05, 0.3, n), rng.uniform(0.05, 0.3, n)
        return np.stack([y, x, y + h, x + w], axis=1)

    gt = boxes(num_gt)
    labels = rng.integers(1, 4, num_gt)
    crowd = rng.random(num_gt) < crowd_p
    # Most detections are near a ground-truth box, mostly with its class (IoUs spread over the thresholds).
    if num_gt:
        source = rng.integers(0, num_gt, num_dets)
        near = gt[source] + rng.normal(0, 0.012, (num_dets, 4))
        near_classes = np.where(rng.random(num_dets) < 0.8, labels[source], rng.integers(1, 4, num_dets))
    else:
        near, near_classes = boxes(num_dets), rng.integers(1, 4, num_dets)
    is_near = rng.random(num_dets) < 0.7
    dets = np.where(is_near[:, None], near, boxes(num_dets))
    dets = np.concatenate([np.minimum(dets[:, :2], dets[:, 2:]), np.maximum(dets[:, :2], dets[:, 2:])], axis=1)
    det_classes = np.where(is_near, near_classes, rng.integers(1, 4, num_dets))
    scores = rng.random(num_dets)
    return gt, labels, crowd, dets, det_classes, scores


def _element(gt, labels, crowd, dets, det_classes, scores):
    pad = max(0, 100 - len(dets))
    return metric_types.StandardMetricInputs(
        {
            "features": {
                F.YMIN: gt[:, 0],
                F.XMIN: gt[:, 1],
                F.YMAX: gt[:, 2],
                F.XMAX: gt[:, 3],
                F.LABEL: labels,
                F.IS_CROWD: crowd.astype(np.int64),
                F.HEIGHT: np.array([int(SIZE)]),
                F.WIDTH: np.array([int(SIZE)]),
            },
            "predictions": {
                "detection_boxes": np.pad(dets, [[0, pad], [0, 0]]),
                "detection_scores": np.pad(scores, [0, pad]),
                "detection_classes": np.pad(det_classes.astype(np.float32), [0, pad]),
                "num_detections": np.array(float(len(dets))),
            },
        }
    )


def _xywh(b):
    return [b[1] * SIZE, b[0] * SIZE, (b[3] - b[1]) * SIZE, (b[2] - b[0]) * SIZE]


def _pycocotools(images):
    infos, annotations, detections = [], [], []
    for image_id, (gt, labels, crowd, dets, det_classes, scores) in enumerate(images, start=1):
        infos.append({"id": image_id, "width": SIZE, "height": SIZE})
        for box, label, is_crowd in zip(gt, labels, crowd, strict=True):
            xywh = _xywh(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": xywh,
                    "area": xywh[2] * xywh[3],
                    "iscrowd": int(is_crowd),
                }
            )
        detections += [
            [image_id, *_xywh(b), float(s), int(c)] for b, s, c in zip(dets, scores, det_classes, strict=True)
        ]
    return coco_eval(infos, annotations, detections, num_classes=3)


def _tfma(images, split_at=None):
    """Runs the combiner like Beam does: two partial accumulators merged, then the output."""
    computation = tfma_coco.COCODetectionMetrics(CLASSES, NAMES).computations()[0]
    combiner = computation.combiner
    split_at = len(images) // 2 if split_at is None else split_at
    parts = []
    for chunk in (images[:split_at], images[split_at:]):
        acc = combiner.create_accumulator()
        for image in chunk:
            acc = combiner.add_input(acc, _element(*image))
        parts.append(acc)
    out = combiner.extract_output(combiner.merge_accumulators(parts))
    return {k.name: v for k, v in out.items()}


@pytest.mark.parametrize("seed,crowd_p", [(0, 0.0), (1, 0.0), (2, 0.15), (3, 0.3)])
def test_metric_equals_pycocotools(seed, crowd_p):
    rng = np.random.default_rng(seed)
    images = [_random_image(rng, int(rng.integers(0, 8)), int(rng.integers(0, 25)), crowd_p) for _ in range(60)]
    expected = _pycocotools(images)
    got = _tfma(images)
    assert got["map"] == pytest.approx(expected.map, abs=1e-9)
    assert got["map_50"] == pytest.approx(expected.map_50, abs=1e-9)
    assert got["map_75"] == pytest.approx(expected.map_75, abs=1e-9)
    assert got["ar_100"] == pytest.approx(expected.ar_100, abs=1e-9)
    for label, name in zip(CLASSES, NAMES, strict=True):
        assert got[f"ap/{name}"] == pytest.approx(expected.ap_per_class[label], abs=1e-9)
        # COCOeval's precision is [IoU, recall, class, area (all, small, medium, large), max detections].
        p = expected.precision[0, :, label - 1, 0, -1]
        assert got[tfma_coco.class_ap_50_key(name)] == pytest.approx(p.mean(), abs=1e-9)
    for area_index, size in enumerate(tfma_coco.SIZES, start=1):
        p = expected.precision[0, :, :, area_index, -1]
        want = np.mean([p[:, k].mean() for k in range(3) if (p[:, k] > -1).all()])
        assert got[tfma_coco.size_map_50_key(size)] == pytest.approx(want, abs=1e-9)
        assert got[tfma_coco.size_num_gt_key(size)] > 0
    assert 0.05 < got["map"] < 0.95  # the random data is neither trivial nor hopeless


def test_more_than_100_detections_per_class_are_cut_like_cocoeval():
    rng = np.random.default_rng(5)
    gt, _, crowd, *_ = _random_image(rng, 6, 0)
    dets = np.repeat(gt, 30, axis=0)[:150] + rng.normal(0, 0.02, (150, 4))
    image = (gt, np.ones(6, dtype=np.int64), crowd, dets, np.ones(150), rng.random(150))
    # pycocotools keeps each image's 100 best per class; so does the metric (predictions beyond 100 are cut first).
    assert _tfma([image], split_at=1)["map"] == pytest.approx(_pycocotools([image]).map, abs=1e-9)


def test_perfect_detections_score_one_and_a_split_without_boxes_is_nan():
    rng = np.random.default_rng(6)
    gt, labels, crowd, *_ = _random_image(rng, 5, 0)
    perfect = (gt, labels, crowd, gt, labels, np.linspace(1, 0.5, 5))
    got = _tfma([perfect], split_at=1)
    assert got["map"] == pytest.approx(1.0) and got["ar_100"] == pytest.approx(1.0)
    empty = (np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), gt, labels, np.ones(5))
    assert np.isnan(_tfma([empty], split_at=1)["map"])
    assert _tfma([empty], split_at=1)["num_gt_boxes"] == 0


def test_a_class_or_size_without_ground_truth_is_nan_with_a_zero_count():
    """What the Evaluator's floors skip: no box of the class (or size) in the split, so nothing to judge."""
    rng = np.random.default_rng(9)
    gt, labels, crowd, dets, det_classes, scores = _random_image(rng, 6, 12)
    labels = np.where(labels == 3, 1, labels)  # no triangle at all
    big = gt.copy()
    big[:, 2:] = big[:, :2] + 0.5  # 200 x 200 px: only large boxes
    got = _tfma([(big, labels, crowd, dets, det_classes, scores)], split_at=1)
    assert np.isnan(got[tfma_coco.class_ap_50_key("triangle")])
    assert got[tfma_coco.class_num_gt_key("triangle")] == 0
    assert got[tfma_coco.class_num_gt_key("circle")] + got[tfma_coco.class_num_gt_key("square")] == 6
    assert np.isnan(got[tfma_coco.size_map_50_key("small")]) and got[tfma_coco.size_num_gt_key("small")] == 0
    assert got[tfma_coco.size_num_gt_key("large")] == 6


def test_score_profile_is_the_mean_top_score_and_confident_count_per_image():
    """The live-quality reference: the same numbers the model server logs per request (score_profile.py)."""
    from detx.components.evaluation import score_profile

    rng = np.random.default_rng(8)
    images = [_random_image(rng, 3, int(rng.integers(0, 12))) for _ in range(20)]
    computation = tfma_coco.COCODetectionMetrics(CLASSES, ["circle", "square", "triangle"]).computations()[1]
    combiner = computation.combiner
    parts = []
    for chunk in (images[:7], images[7:]):
        acc = combiner.create_accumulator()
        for image in chunk:
            acc = combiner.add_input(acc, _element(*image))
        parts.append(acc)
    got = {k.name: v for k, v in combiner.extract_output(combiner.merge_accumulators(parts)).items()}
    scores = [image[5] for image in images]
    expected_top = np.mean([s.max() if len(s) else 0.0 for s in scores])
    expected_count = np.mean([(s >= score_profile.CONFIDENT).sum() for s in scores])
    assert got[score_profile.TOP_SCORE] == pytest.approx(expected_top)
    assert got[score_profile.DETECTIONS] == pytest.approx(expected_count)
    assert any(len(s) == 0 for s in scores)  # an image without detections counts with top score 0
