"""The TFLite step's plain parts: the op's settings, center-size anchors, matching, the gate, options and report."""

import json

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import attr_value_pb2

from detx.components.evaluation.detections import Detections, iou, unmatched
from detx.components.modeling import box_coder
from detx.components.modeling.config import preset
from detx.components.tflite.gate import decide
from detx.components.tflite.options import TFLiteOptions
from detx.components.tflite.postprocess_op import OP_NAME, PostProcessSettings, center_size_anchors
from detx.components.tflite.report import REPORT_FILE, ModelEntry, TFLiteReport


def test_the_op_gets_detx_s_own_nms_settings():
    config, _ = preset("zoo320")
    settings = PostProcessSettings.from_config(config, num_classes=90)
    attrs = settings.attributes()
    assert attrs == {
        "max_detections": config.max_detections,
        "max_classes_per_detection": 1,
        "detections_per_class": config.max_detections_per_class,
        "num_classes": 90,
        "nms_score_threshold": config.score_threshold,
        "nms_iou_threshold": config.iou_threshold,
        "y_scale": 10.0,
        "x_scale": 10.0,
        "h_scale": 5.0,
        "w_scale": 5.0,
        "use_regular_nms": True,
    }
    parsed = text_format.Parse(settings.implements_signature(), attr_value_pb2.NameAttrList())
    assert parsed.name == OP_NAME
    assert parsed.attr["num_classes"].i == 90 and parsed.attr["nms_iou_threshold"].f == pytest.approx(0.6)
    assert parsed.attr["use_regular_nms"].b is True
    assert PostProcessSettings.from_config(config, 3, use_regular_nms=False).attributes()["use_regular_nms"] is False


def test_center_size_anchors_decode_like_detx_s_box_coder():
    corners = np.array([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]], np.float32)
    np.testing.assert_allclose(
        center_size_anchors(corners), [[0.3, 0.3, 0.4, 0.2], [0.5, 0.5, 1.0, 1.0]], rtol=0, atol=1e-7
    )
    # The op decodes ycenter = ty / 10 * h_a + y_a, h = exp(th / 5) * h_a: detx's decode on the same anchors.
    codes = np.array([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    y, x, h, w = center_size_anchors(corners).T
    ty, tx, th, tw = codes.T
    yc, xc = ty / 10 * h + y, tx / 10 * w + x
    hh, ww = np.exp(th / 5) * h, np.exp(tw / 5) * w
    op = np.stack([yc - hh / 2, xc - ww / 2, yc + hh / 2, xc + ww / 2], 1)
    detx = box_coder.decode(tf.constant(codes), tf.constant(corners), (10.0, 10.0, 5.0, 5.0)).numpy()
    np.testing.assert_allclose(op, detx, atol=1e-6)


def _dets(boxes, classes, scores):
    return Detections(np.array(boxes, np.float32), np.array(classes, np.int64), np.array(scores, np.float32))


def test_iou_of_boxes_with_and_without_area():
    box = np.array([0.0, 0.0, 0.5, 0.5])
    others = np.array([[0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.75, 0.5], [0.6, 0.6, 0.9, 0.9], [0.1, 0.1, 0.1, 0.3]])
    np.testing.assert_allclose(iou(box, others), [1.0, 1 / 3, 0.0, 0.0])


def test_matching_is_one_to_one_by_class_iou_and_score():
    ref = _dets([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [1, 1, 2], [0.9, 0.899, 0.5])
    # Near-tied scores listed the other way round still match; one box of class 1 is missing.
    cand = _dets([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [1, 2], [0.8995, 0.5])
    assert unmatched(ref, cand, 0.99, 0.01) == [1]
    same = _dets([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], [1, 1, 2], [0.9, 0.9, 0.5])
    assert unmatched(ref, same, 0.99, 0.01) == []
    # Another class, a shifted box, or a score off by more than the tolerance do not match.
    assert unmatched(_dets([[0.5, 0.5, 1, 1]], [2], [0.5]), _dets([[0.5, 0.5, 1, 1]], [3], [0.5]), 0.99, 0.01) == [0]
    assert unmatched(_dets([[0.5, 0.5, 1, 1]], [2], [0.5]), _dets([[0.51, 0.5, 1, 1]], [2], [0.5]), 0.99, 0.01) == [0]
    assert unmatched(_dets([[0.5, 0.5, 1, 1]], [2], [0.5]), _dets([[0.5, 0.5, 1, 1]], [2], [0.52]), 0.99, 0.01) == [0]


def test_float_models_always_ship_and_int8_only_within_the_allowed_drop():
    assert decide("float32", 0.7, 0.1, 0.02).ship
    assert decide("float16", None, None, 0.02).reason == "float models always ship"
    within = decide("int8", 0.700, 0.685, 0.02)
    assert within.ship and within.reason == (
        "int8 mAP@0.5 0.685 is 0.015 below the SavedModel's 0.700; the allowed drop is 0.020"
    )
    assert decide("int8", 0.700, 0.680, 0.02).ship  # exactly the limit
    below = decide("int8", 0.700, 0.650, 0.02)
    assert not below.ship
    assert below.reason.startswith(
        "int8 mAP@0.5 0.650 is 0.050 below the SavedModel's 0.700, more than the allowed 0.020: not shipped"
    )
    assert decide("int8", 0.5, 0.6, 0.0).ship  # better than the SavedModel
    assert decide("int8", None, None, 0.02).reason.startswith("not evaluated")


def test_options_travel_as_exec_properties_and_are_checked():
    options = TFLiteOptions(calibration_examples=7, max_int8_map50_drop=0.05, use_regular_nms=False, num_threads=1)
    props = options.exec_properties()
    assert props["use_regular_nms"] == 0
    assert TFLiteOptions.from_exec_properties(props) == options
    assert TFLiteOptions.from_exec_properties({}) == TFLiteOptions()
    with pytest.raises(ValueError, match="calibration_examples must be at least 1, got 0"):
        TFLiteOptions(calibration_examples=0)
    with pytest.raises(ValueError, match=r"max_int8_map50_drop must be within \[0, 1\], got 1.5"):
        TFLiteOptions(max_int8_map50_drop=1.5)


def test_the_report_round_trips_and_reads_as_lines(tmp_path):
    entry = ModelEntry("int8", "rejected/detector_int8.tflite", 800_000, 0.26, 0.65, 0.4, 0.05, False, "too low")
    report = TFLiteReport(
        saved_model={"path": "/m", "preset": "tiny", "variables_bytes": 3_000_000, "map_50": 0.7, "map": 0.45},
        eval_examples=40,
        calibration_examples=100,
        settings={"use_regular_nms": False},
        models=[entry],
    )
    report.write(str(tmp_path))
    assert json.loads((tmp_path / REPORT_FILE).read_text())["format"] == 1
    assert TFLiteReport.read(str(tmp_path)) == report
    assert report.shipped() == []
    assert report.summary_lines() == [
        "SavedModel (tiny): variables 3.00 MB, mAP@0.5 0.700 on 40 eval images",
        "int8       0.80 MB (0.26x)  mAP@0.5 0.650  NOT shipped: too low",
    ]


def test_the_loader_tries_only_presets_whose_class_head_fits_the_checkpoint():
    from detx.components.tflite.source import _candidates

    tiny, _ = preset("tiny")
    zoo, _ = preset("zoo320")
    presets = {"tiny": tiny, "zoo320": zoo}
    # The class head is a 1x1 pointwise kernel from fpn_depth to anchors x (K + 1) channels.
    assert [n for n, _ in _candidates({(1, 1, 64, 6 * 4), (3, 3, 64, 1)}, 3, presets)] == ["tiny"]
    assert [n for n, _ in _candidates({(1, 1, 128, 6 * 91)}, 90, presets)] == ["zoo320"]
    assert _candidates({(1, 1, 64, 6 * 4)}, 4, presets) == []
