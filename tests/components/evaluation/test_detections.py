"""Matching two detectors' detections one to one (components/evaluation/detections.py): exact counts on tiny sets."""

from __future__ import annotations

import numpy as np
import pytest

from detx.components.evaluation.detections import Detections, Matching, match, unmatched


def _dets(boxes, classes, scores) -> Detections:
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes), np.asarray(scores, np.float32))


def test_identical_detections_all_match_with_no_score_difference():
    d = _dets([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [1, 2], [0.9, 0.6])
    m = match(d, d, min_score=0.3)
    assert m == Matching(2, 0, 0, (0.0, 0.0))
    assert m.agreement == 1.0


def test_neither_side_finding_anything_is_full_agreement():
    empty = _dets([], [], [])
    assert match(empty, empty, 0.3) == Matching()
    assert Matching().agreement == 1.0


def test_class_iou_and_min_score_decide_a_match():
    ref = _dets([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0.5, 0.5, 1]], [1, 2, 3], [0.9, 0.8, 0.2])
    cand = _dets(
        # ref[0]'s box as class 2; ref[1]'s box shifted by 0.05 (IoU 0.225 / 0.275); ref[2]'s box, scoring above 0.3
        [[0, 0, 0.5, 0.5], [0.5, 0.55, 1, 1.05], [0, 0.5, 0.5, 1]],
        [2, 2, 3],
        [0.7, 0.5, 0.4],
    )
    m = match(ref, cand, min_score=0.3)
    # ref[0] (class 1) finds no class-1 box; ref[1] matches cand[1] (IoU 0.818); ref[2] scores below 0.3,
    # so cand[2] is found by the candidate only, as is cand[0].
    assert (m.matched, m.only_reference, m.only_candidate) == (1, 1, 2)
    assert m.score_differences == pytest.approx((0.3,))
    assert m.agreement == pytest.approx(1 / 4)
    # IoU just below 0.5 is no match: a box shifted by half its width has IoU 1/3.
    shifted = _dets([[0.5, 0.75, 1, 1.25]], [2], [0.8])
    assert match(_dets([[0.5, 0.5, 1, 1]], [2], [0.8]), shifted, 0.3) == Matching(0, 1, 1, ())


def test_matching_is_one_to_one_and_best_reference_picks_the_most_overlapping_box():
    # Two reference boxes of the same class over one candidate box: only one pair; the best-scoring reference
    # detection picks first, and it picks the most overlapping of two candidate boxes.
    ref = _dets([[0, 0, 1, 1], [0, 0, 0.9, 0.9]], [1, 1], [0.5, 0.9])
    cand = _dets([[0, 0, 0.9, 0.9]], [1], [0.6])
    assert match(ref, cand, 0.3) == Matching(1, 1, 0, (pytest.approx(0.3),))
    two = _dets([[0, 0, 1, 1], [0, 0, 0.85, 0.85]], [1, 1], [0.95, 0.4])
    m = match(_dets([[0, 0, 0.86, 0.86]], [1], [0.5]), two, 0.3)
    assert m.matched == 1 and m.score_differences == (pytest.approx(0.1),)  # the 0.85 box (IoU 0.977), not 0.95's


def test_matchings_add_up_over_the_images_of_a_request():
    total = Matching(1, 2, 0, (0.1,)) + Matching(3, 0, 1, (0.2, 0.0, 0.3))
    assert total == Matching(4, 2, 1, (0.1, 0.2, 0.0, 0.3))
    assert total.agreement == pytest.approx(4 / 7)


def test_unmatched_keeps_its_score_tolerance_and_closest_score_choice():
    # TFLite's parity check: the closest-scoring qualifying box is taken, so the second reference still finds one.
    ref = _dets([[0, 0, 1, 1], [0, 0, 1, 1]], [1, 1], [0.9, 0.5])
    cand = _dets([[0, 0, 1, 1], [0, 0, 1, 1]], [1, 1], [0.5, 0.9])
    assert unmatched(ref, cand, 0.99, 0.01) == []
    assert unmatched(ref, _dets([[0, 0, 1, 1]], [1], [0.52]), 0.99, 0.01) == [0, 1]
