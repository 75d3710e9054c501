"""Hand-computed cases for grizal.metrics (ActivityNet mAP, T3AL average tIoU, Charades-STA recall)."""

import math

import numpy as np
import pytest

from grizal.metrics import Instances, interpolated_average_precision, score_detections, segment_iou


def gt_of(rows):
    """rows: (video, label, start, end)."""
    rows = list(rows)
    return Instances([r[0] for r in rows], [r[1] for r in rows], [r[2:4] for r in rows])


def pred_of(rows):
    """rows: (video, label, start, end, score)."""
    rows = list(rows)
    return Instances([r[0] for r in rows], [r[1] for r in rows], [r[2:4] for r in rows], [r[4] for r in rows])


def test_segment_iou_matrix():
    iou = segment_iou([[0, 10], [5, 5]], [[0, 10], [5, 15], [20, 30], [5, 5]])
    np.testing.assert_allclose(iou, [[1.0, 5 / 15, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


def test_interpolated_ap_takes_the_precision_envelope():
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: the envelope lifts the dip, AP = 1/2 * 1 + 1/2 * 2/3
    assert interpolated_average_precision([1, 0.5, 2 / 3], [0.5, 0.5, 1]) == pytest.approx(5 / 6, abs=1e-12)
    both = interpolated_average_precision(
        [[1, 0.5, 2 / 3], [1, 0.5, 1 / 3]], [[0.5, 0.5, 1], [0.5, 0.5, 0.5]]
    )
    np.testing.assert_allclose(both, [5 / 6, 0.5], atol=1e-12)


def test_duplicate_is_a_false_positive_and_thresholds_are_separate():
    gt = gt_of([(0, 0, 0, 10), (0, 0, 20, 30)])
    pred = pred_of([(0, 0, 0, 10, 0.9), (0, 0, 0, 8, 0.8), (0, 0, 22, 30, 0.7)])
    s = score_detections(gt, pred, 1, [0.5, 0.9], recall_at=(1, 5), recall_ious=(0.5, 0.7))
    # 0.5: TP, FP (g0 already taken), TP -> P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1 -> 5/6
    # 0.9: only p0 (tIoU 1) passes -> P = 1, 1/2, 1/3 at R = 1/2 -> 1/2
    np.testing.assert_allclose(s.ap[0], [5 / 6, 0.5], atol=1e-12)
    np.testing.assert_allclose(s.mean_ap, [5 / 6, 0.5], atol=1e-12)
    assert s.average_mean_ap == pytest.approx(2 / 3, abs=1e-12)
    # T3AL average tIoU over all 3 x 2 same-video pairs: (1 + 0) + (0.8 + 0) + (0 + 0.8) = 2.6 over 6
    assert s.average_tiou == pytest.approx(2.6 / 6, abs=1e-12)
    assert s.mean_best_tiou == pytest.approx((1.0 + 0.8) / 2, abs=1e-12)
    # top-1 candidate of both queries is p0: hits g0 only
    assert s.recall == pytest.approx({(1, 0.5): 0.5, (1, 0.7): 0.5, (5, 0.5): 1.0, (5, 0.7): 1.0})


def test_taken_best_ground_truth_falls_back_to_the_next_above_threshold():
    gt = gt_of([(0, 0, 0, 10), (0, 0, 4, 14)])
    # p1 overlaps g0 best (9/11) but g0 is taken by p0; g1 (7/13 = 0.538) still clears 0.5, not 0.7
    pred = pred_of([(0, 0, 0, 10, 0.9), (0, 0, 1, 11, 0.8)])
    s = score_detections(gt, pred, 1, [0.5, 0.7])
    np.testing.assert_allclose(s.ap[0], [1.0, 0.5], atol=1e-12)


def test_ground_truth_matched_once_even_if_duplicated():
    gt = gt_of([(0, 0, 0, 10), (0, 0, 0, 10)])
    one = score_detections(gt, pred_of([(0, 0, 0, 10, 0.9)]), 1, [0.5])
    assert one.ap[0, 0] == pytest.approx(0.5)
    two = score_detections(gt, pred_of([(0, 0, 0, 10, 0.9), (0, 0, 0, 10, 0.8)]), 1, [0.5])
    assert two.ap[0, 0] == pytest.approx(1.0)


def test_score_ties_visit_the_later_prediction_first():
    # The reference sorts with argsort()[::-1]: of two equal scores the later row comes first.
    gt = gt_of([(0, 0, 0, 10)])
    pred = pred_of([(0, 0, 0, 10, 0.5), (0, 0, 20, 30, 0.5)])
    s = score_detections(gt, pred, 1, [0.5], recall_at=(1,), recall_ious=(0.5,))
    # order p1 (FP), p0 (TP): P = 0, 1/2 at R = 0, 1 -> AP 1/2 (it would be 1 with p0 first)
    assert s.ap[0, 0] == pytest.approx(0.5, abs=1e-12)
    assert s.recall[(1, 0.5)] == 0.0
    swapped = score_detections(gt, pred_of([(0, 0, 20, 30, 0.5), (0, 0, 0, 10, 0.5)]), 1, [0.5])
    assert swapped.ap[0, 0] == pytest.approx(1.0, abs=1e-12)


def test_ground_truth_ties_take_the_later_instance_first():
    gt = gt_of([(0, 0, 0, 10), (0, 0, 5, 15)])
    # p0 = [2.5, 12.5] has tIoU 0.6 with both; the reference walks argsort()[::-1] and takes g1, so p1
    # (0.818 with g1, 0.25 with g0) finds nothing left: AP 1/2. Taking g0 would have given 1.
    pred = pred_of([(0, 0, 2.5, 12.5, 0.9), (0, 0, 6, 16, 0.8)])
    s = score_detections(gt, pred, 1, [0.5])
    assert s.ap[0, 0] == pytest.approx(0.5, abs=1e-12)


def test_class_without_predictions_scores_zero_and_counts_in_the_mean():
    gt = gt_of([(0, 0, 0, 10), (0, 1, 20, 30)])
    s = score_detections(gt, pred_of([(0, 0, 0, 10, 0.9)]), 2, [0.5, 0.7])
    np.testing.assert_allclose(s.ap, [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(s.mean_ap, [0.5, 0.5])


def test_class_without_ground_truth_is_left_out_of_the_mean():
    gt = gt_of([(0, 0, 0, 10)])
    pred = pred_of([(0, 0, 0, 10, 0.9), (0, 1, 0, 10, 0.95)])
    s = score_detections(gt, pred, 2, [0.5])
    assert math.isnan(s.ap[1, 0])
    assert list(s.scored_classes) == [0]
    np.testing.assert_allclose(s.mean_ap, [1.0])


def test_prediction_in_a_video_without_its_class_is_a_false_positive():
    gt = gt_of([(0, 0, 0, 10), (1, 1, 0, 10)])
    pred = pred_of([(1, 0, 0, 10, 0.9), (0, 0, 0, 10, 0.8)])
    s = score_detections(gt, pred, 2, [0.5])
    # class 0: FP then TP -> P = 0, 1/2 at R = 0, 1 -> 1/2; class 1 has no prediction -> 0
    np.testing.assert_allclose(s.ap[:, 0], [0.5, 0.0], atol=1e-12)
    # no pair for the video-1 prediction (its video has no class-0 ground truth)
    assert s.average_tiou == pytest.approx(1.0)


def test_recall_per_query_uses_the_top_n_of_its_own_sentence():
    # Charades-STA style: each label is a sentence, each ground truth a query
    gt = gt_of([(0, 0, 0, 10), (0, 1, 10, 20)])
    pred = pred_of([(0, 0, 30, 40, 0.9), (0, 0, 0, 9, 0.8), (0, 1, 10, 17, 0.7)])
    s = score_detections(gt, pred, 2, [0.5], recall_at=(1, 5), recall_ious=(0.5, 0.7))
    # q0: top-1 misses, top-2 has 0.9; q1: top-1 has exactly 0.7 (>= counts)
    assert s.recall == pytest.approx({(1, 0.5): 0.5, (1, 0.7): 0.5, (5, 0.5): 1.0, (5, 0.7): 1.0})


def test_zero_length_segments_never_match():
    gt = gt_of([(0, 0, 5, 5)])
    s = score_detections(gt, pred_of([(0, 0, 5, 5, 0.9)]), 1, [0.5])
    assert s.ap[0, 0] == 0.0
    assert s.average_tiou == 0.0


def test_empty_predictions():
    gt = gt_of([(0, 0, 0, 10)])
    s = score_detections(gt, pred_of([]), 1, [0.5], recall_at=(1,), recall_ious=(0.5,))
    assert s.ap[0, 0] == 0.0
    assert math.isnan(s.average_tiou)
    assert s.mean_best_tiou == 0.0
    assert s.recall[(1, 0.5)] == 0.0


def test_bad_arguments_raise():
    gt = gt_of([(0, 0, 0, 10)])
    with pytest.raises(ValueError, match="scores"):
        score_detections(gt, gt, 1, [0.5])
    with pytest.raises(ValueError, match="num_classes"):
        score_detections(gt, pred_of([(0, 3, 0, 1, 0.5)]), 1, [0.5])
    with pytest.raises(ValueError, match="threshold"):
        score_detections(gt, pred_of([]), 1, [])
    with pytest.raises(ValueError, match="length"):
        Instances([0, 1], [0], [[0, 1]])
