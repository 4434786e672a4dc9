"""Exact-value tests of anchors, IoU, box coding, matching and losses on tiny tensors."""

import math

import numpy as np
import pytest
import tensorflow as tf

from detx.components.modeling import anchors, box_coder, box_ops
from detx.components.modeling.config import ModelConfig, TrainConfig, preset
from detx.components.modeling.losses import sigmoid_focal_loss, smooth_l1, ssd_losses
from detx.components.modeling.matcher import argmax_match, assign_targets

SCALES = (10.0, 10.0, 5.0, 5.0)


def test_pairwise_iou_exact():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = tf.constant([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    np.testing.assert_allclose(box_ops.pairwise_iou(a, b).numpy(), [[1 / 7, 1.0, 0.0], [0.0, 0.25, 0.0]], rtol=1e-6)
    assert box_ops.pairwise_iou(tf.zeros([0, 4]), b).shape == (0, 3)


def test_box_coder_exact_and_inverse():
    anchor = tf.constant([[0.0, 0.0, 1.0, 1.0]])
    same = box_coder.encode(anchor, anchor, SCALES)
    np.testing.assert_allclose(same.numpy(), [[0, 0, 0, 0]], atol=1e-6)
    shifted = tf.constant([[0.1, 0.0, 1.1, 1.0]])  # down by 10% of the anchor's height
    np.testing.assert_allclose(box_coder.encode(shifted, anchor, SCALES).numpy(), [[1, 0, 0, 0]], atol=1e-5)
    doubled = tf.constant([[-0.5, 0.0, 1.5, 1.0]])  # twice as tall, same centre
    np.testing.assert_allclose(
        box_coder.encode(doubled, anchor, SCALES).numpy(), [[0, 0, 5 * math.log(2), 0]], atol=1e-5
    )
    boxes = tf.constant([[0.2, 0.3, 0.5, 0.9], [0.0, 0.0, 0.1, 0.1]])
    anchors_ = tf.constant([[0.1, 0.1, 0.6, 0.6], [0.0, 0.0, 0.2, 0.3]])
    roundtrip = box_coder.decode(box_coder.encode(boxes, anchors_, SCALES), anchors_, SCALES)
    np.testing.assert_allclose(roundtrip.numpy(), boxes.numpy(), atol=1e-6)


def test_level_anchor_order_sizes_and_offset():
    a = anchors.level_anchors(64, 3, (1, 2), 4.0, (1.0, 2.0, 0.5), 2) * 64
    assert a.shape == (12, 4)
    # Cell (0, 0): centre (4, 4); first anchor 32x32, second 32*sqrt2 square.
    np.testing.assert_allclose(a[0], [-12, -12, 20, 20], atol=1e-4)
    s = 32 * math.sqrt(2) / 2
    np.testing.assert_allclose(a[1], [4 - s, 4 - s, 4 + s, 4 + s], atol=1e-4)
    # Ratio 2 is height/width = 2: height 32/sqrt2, width 32*sqrt2 ... times scale 1.
    h, w = 32 / math.sqrt(2), 32 * math.sqrt(2)
    np.testing.assert_allclose(a[2], [4 - h / 2, 4 - w / 2, 4 + h / 2, 4 + w / 2], atol=1e-4)
    # The next cell is one stride to the right.
    np.testing.assert_allclose(a[6], a[0] + [0, 8, 0, 8], atol=1e-4)


def test_zoo320_has_12804_anchors_and_the_level7_offset_quirk():
    config = ModelConfig()
    all_anchors = anchors.generate(config)
    assert all_anchors.shape == (12804, 4)
    last = anchors.level_anchors(320, 7, (3, 3), 4.0, (1.0, 2.0, 0.5), 2) * 320
    np.testing.assert_allclose(last[0], [-256, -256, 256, 256], atol=1e-3)  # centre 0, not 64
    level6 = anchors.level_anchors(320, 6, (5, 5), 4.0, (1.0, 2.0, 0.5), 2) * 320
    np.testing.assert_allclose(level6[0][:2], [32 - 128, 32 - 128], atol=1e-3)  # 320 % 64 == 0: centre 32
    assert anchors.feature_grid(320, 7) == (3, 3) and anchors.feature_grid(320, 3) == (40, 40)


def test_argmax_match_threshold_and_forced_matches():
    iou = tf.constant(
        [
            [0.7, 0.3, 0.0, 0.49],  # box 0: anchor 0 by threshold
            [0.1, 0.35, 0.2, 0.0],  # box 1: best IoU 0.35 < 0.5, forced onto anchor 1
        ]
    )
    np.testing.assert_array_equal(argmax_match(iou, 0.5).numpy(), [0, 1, -1, -1])
    np.testing.assert_array_equal(argmax_match(tf.zeros([0, 3]), 0.5).numpy(), [-1, -1, -1])


def test_boxes_sharing_a_best_anchor_give_it_to_the_first_in_annotation_order():
    # Boxes 0 and 2 both have anchor 1 as their best (below the threshold): the OD API's argmax
    # matcher gives it to box 0; box 1 keeps its own.
    iou = tf.constant([[0.1, 0.3, 0.0], [0.0, 0.1, 0.4], [0.05, 0.2, 0.0]])
    np.testing.assert_array_equal(argmax_match(iou, 0.5).numpy(), [-1, 0, 1])
    np.testing.assert_array_equal(argmax_match(tf.reverse(iou, [0]), 0.5).numpy(), [-1, 0, 1])


def test_assign_targets_exact():
    anchors_ = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]])
    boxes = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 1.0]])
    labels = tf.constant([3, 1])
    cls, box_t, matched = assign_targets(boxes, labels, anchors_, 0.5, SCALES)
    np.testing.assert_array_equal(cls.numpy(), [3, 1, 0])
    np.testing.assert_array_equal(matched.numpy(), [1, 1, 0])
    np.testing.assert_allclose(box_t.numpy()[0], [0, 0, 0, 0], atol=1e-5)
    expected = box_coder.encode(boxes[1:], anchors_[1:2], SCALES).numpy()[0]
    np.testing.assert_allclose(box_t.numpy()[1], expected, atol=1e-6)
    np.testing.assert_array_equal(box_t.numpy()[2], [0, 0, 0, 0])
    cls, box_t, matched = assign_targets(tf.zeros([0, 4]), tf.zeros([0], tf.int32), anchors_, 0.5, SCALES)
    assert cls.numpy().tolist() == [0, 0, 0] and matched.numpy().sum() == 0


def test_focal_loss_exact_values():
    logits = tf.constant([math.log(0.01 / 0.99), 0.0])  # p = 0.01 and 0.5
    loss = sigmoid_focal_loss(tf.constant([0.0, 1.0]), logits, alpha=0.25, gamma=2.0).numpy()
    ce0, ce1 = -math.log(0.99), -math.log(0.5)
    np.testing.assert_allclose(loss, [ce0 * 0.01**2 * 0.75, ce1 * 0.5**2 * 0.25], rtol=1e-5)


def test_smooth_l1_exact_values():
    out = smooth_l1(tf.zeros(3), tf.constant([0.5, -1.0, 3.0]), delta=1.0).numpy()
    np.testing.assert_allclose(out, [0.125, 0.5, 2.5])


def test_ssd_losses_normalize_by_matches_and_code_size():
    cls_t = tf.constant([[2, 0]])
    box_t = tf.constant([[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    matched = tf.constant([[1.0, 0.0]])
    logits = tf.fill([1, 2, 3], 0.0)  # p = 0.5 everywhere
    codes = tf.constant([[[0.5, 0.5, 0.5, 0.5], [9.0, 9.0, 9.0, 9.0]]])  # the unmatched anchor's codes cost nothing
    cls, loc = ssd_losses(cls_t, box_t, matched, logits, codes, 0.25, 2.0, 1.0)
    ce = math.log(2)
    pos, neg = ce * 0.25 * 0.25, ce * 0.25 * 0.75
    # Anchor 0: one positive column (label 2), two negatives; anchor 1: three negatives (all-zero target).
    np.testing.assert_allclose(cls.numpy(), pos + 5 * neg, rtol=1e-5)
    np.testing.assert_allclose(loc.numpy(), 4 * 0.125 / 4, rtol=1e-6)


def test_learning_rate_schedule_follows_the_zoo():
    zoo = TrainConfig()
    assert zoo.learning_rate(0) == pytest.approx(0.026666)
    assert zoo.learning_rate(1000) == pytest.approx(0.08)
    assert zoo.learning_rate(50_000) == pytest.approx(0.0, abs=1e-9)
    assert zoo.learning_rate(25_500) == pytest.approx(0.04, rel=1e-3)
    small = TrainConfig(batch_size=16)
    assert small.scaled_learning_rate() == pytest.approx((0.01, 0.026666 / 8))


def test_presets_and_image_size_check():
    assert preset("zoo320")[0] == ModelConfig()
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(image_size=300)


def test_frozen_batch_norm_fixes_statistics_and_still_trains_gamma_and_beta_as_the_od_api():
    from detx.components.modeling.config import preset
    from detx.components.modeling.network import build_network

    config, _ = preset("zoo320")
    free, frozen = build_network(config, 3), build_network(config, 3, freeze_batchnorm=True)
    # The OD API's SSD MobileNetV2-FPNLite: 232 trainable variables, frozen BN or not.
    assert len(free.model.trainable_variables) == len(frozen.model.trainable_variables) == 232
    bn = frozen.batch_norms()[0]
    before = [v.numpy().copy() for v in (bn.moving_mean, bn.moving_variance)]
    x = tf.random.uniform([2, config.image_size, config.image_size, 3], -1, 1, seed=1)
    with tf.GradientTape() as tape:
        codes, logits = frozen.model(x, training=True)
        loss = tf.reduce_sum(codes) + tf.reduce_sum(logits)
    gradient = tape.gradient(loss, bn.gamma)
    assert gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before[0])  # statistics never updated
    np.testing.assert_array_equal(bn.moving_variance.numpy(), before[1])
    # Inference mode in training: the same input gives the same output as at inference.
    np.testing.assert_allclose(frozen.model(x, training=True)[0], frozen.model(x, training=False)[0], atol=1e-5)


def test_crowd_boxes_are_ignore_regions_with_zero_weight_in_both_losses():
    from detx.components.modeling.losses import ssd_losses

    anchors_ = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]])
    boxes = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    labels = tf.constant([1, 2])
    cls, box_t, matched = assign_targets(boxes, labels, anchors_, 0.5, SCALES, tf.constant([False, True]))
    assert matched.numpy().tolist() == [1.0, -1.0, 0.0]  # anchor 1's match is the crowd box: ignored
    assert cls.numpy().tolist() == [1, 0, 0] and not box_t.numpy()[1].any()

    # The ignored anchor counts in neither loss: any prediction there changes nothing.
    def losses(logit_1, code_1):
        logits = tf.constant([[[-3.0, 2.0, -3.0], [-3.0, logit_1, logit_1], [-3.0, -3.0, -3.0]]])
        codes = tf.constant([[[0.0] * 4, [code_1] * 4, [0.0] * 4]])
        return [float(x) for x in ssd_losses(cls[None], box_t[None], matched[None], logits, codes, 0.25, 2.0, 1.0)]

    assert losses(-3.0, 0.0) == losses(5.0, 3.0)
    # Without the crowd flag the same anchor is a positive of class 2 and its prediction matters.
    cls, box_t, matched = assign_targets(boxes, labels, anchors_, 0.5, SCALES)
    assert matched.numpy().tolist() == [1.0, 1.0, 0.0] and cls.numpy().tolist() == [1, 2, 0]
    assert losses(-3.0, 0.0) != losses(5.0, 3.0)


def test_a_crowd_box_never_takes_a_real_boxs_forced_anchor():
    anchors_ = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    # The crowd box covers anchor 0 well; the small real box's best anchor is also anchor 0 (forced).
    boxes = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.1, 0.1]])
    _, _, matched = assign_targets(boxes, tf.constant([1, 2]), anchors_, 0.5, SCALES, tf.constant([True, False]))
    assert matched.numpy().tolist() == [1.0, 0.0]
