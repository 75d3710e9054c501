"""Hand-made probability curves -> the expected segments."""

import math

import numpy as np
import pytest

from grizal.localization import (
    cross_class_curves,
    localization_config,
    non_maximum_suppression,
    probs_to_segments,
    snippet_bounds,
)
from grizal.model import ConfigError

# 10 snippets over 10 s: snippet i spans [i, i + 1) s, centre i + 0.5
TIMES = np.arange(10) + 0.5
PLAIN = dict(thresholds=[0.5], score="mean", nms="none")


def curve(*spans, low=0.1, high=0.9):
    probs = np.full(10, low)
    for first, stop in spans:
        probs[first:stop] = high
    return probs


def test_snippet_bounds_match_the_resampling_grid():
    np.testing.assert_allclose(snippet_bounds(TIMES, 10.0), np.arange(11.0))
    np.testing.assert_allclose(snippet_bounds(np.array([2.0]), 4.0), [0.0, 4.0])
    # uneven centres: midpoints, half a gap beyond the ends, clipped to the video
    np.testing.assert_allclose(snippet_bounds(np.array([0.2, 1.0, 3.0]), 3.5), [0.0, 0.6, 2.0, 3.5])


def test_one_bump_gives_one_segment_with_exact_bounds_and_mean_score():
    probs = curve((3, 6))
    probs[4] = 0.6
    assert probs_to_segments(probs, TIMES, 10.0, **PLAIN) == [(3.0, 6.0, pytest.approx((0.9 + 0.6 + 0.9) / 3))]


def test_nothing_above_threshold_gives_nothing_and_everything_gives_the_whole_video():
    assert probs_to_segments(np.full(10, 0.2), TIMES, 10.0, **PLAIN) == []
    assert probs_to_segments(np.full(10, 0.8), TIMES, 10.0, **PLAIN) == [(0.0, 10.0, pytest.approx(0.8))]


def test_gaps_up_to_merge_gap_are_merged_and_the_gap_counts_in_the_score():
    probs = curve((1, 3), (5, 8))  # 2 s gap between 3 and 5
    separate = probs_to_segments(probs, TIMES, 10.0, **PLAIN, merge_gap=1.5)
    assert sorted(s[:2] for s in separate) == [(1.0, 3.0), (5.0, 8.0)]
    merged = probs_to_segments(probs, TIMES, 10.0, **PLAIN, merge_gap=2.0)
    assert merged == [(1.0, 8.0, pytest.approx((5 * 0.9 + 2 * 0.1) / 7))]


def test_segments_shorter_than_min_length_are_dropped():
    probs = curve((1, 2), (5, 8))
    assert [s[:2] for s in probs_to_segments(probs, TIMES, 10.0, **PLAIN, min_length=2.0)] == [(5.0, 8.0)]
    assert len(probs_to_segments(probs, TIMES, 10.0, **PLAIN, min_length=1.0)) == 2


def test_contrast_score_uses_the_context_just_outside():
    probs = np.array([0.0, 0.2, 0.4, 0.9, 0.9, 0.9, 0.9, 0.3, 0.1, 0.0])
    # segment [3, 7) s, length 4, context 0.25 -> one snippet each side: 0.4 and 0.3
    segments = probs_to_segments(probs, TIMES, 10.0, thresholds=[0.5], score="contrast", context=0.25, nms="none")
    assert segments == [(3.0, 7.0, pytest.approx(0.9 * (1 - 0.35)))]
    # context 0.5 -> two snippets each side: 0.2, 0.4 and 0.3, 0.1
    segments = probs_to_segments(probs, TIMES, 10.0, thresholds=[0.5], score="contrast", context=0.5, nms="none")
    assert segments == [(3.0, 7.0, pytest.approx(0.9 * (1 - 0.25)))]
    max_score = probs_to_segments(probs, TIMES, 10.0, thresholds=[0.5], score="max", nms="none")
    assert max_score == [(3.0, 7.0, pytest.approx(0.9))]


def test_several_thresholds_then_hard_nms_keeps_the_best_of_overlapping_candidates():
    probs = np.array([0.1, 0.45, 0.8, 0.9, 0.8, 0.45, 0.1, 0.1, 0.7, 0.1])
    candidates = probs_to_segments(probs, TIMES, 10.0, thresholds=[0.4, 0.6], score="mean", nms="none")
    assert sorted(s[:2] for s in candidates) == [(1.0, 6.0), (2.0, 5.0), (8.0, 9.0)]
    kept = probs_to_segments(probs, TIMES, 10.0, thresholds=[0.4, 0.6], score="mean", nms="hard", nms_iou=0.5)
    # [2, 5) (mean 0.833) beats [1, 6) (mean 0.68, IoU 0.6 with it), and [8, 9) does not overlap
    assert kept == [(2.0, 5.0, pytest.approx(2.5 / 3)), (8.0, 9.0, pytest.approx(0.7))]


def test_soft_nms_decays_overlapping_scores_by_a_gaussian_of_iou():
    segments = np.array([[2.0, 5.0, 0.9], [1.0, 6.0, 0.8], [7.0, 9.0, 0.5]])
    kept = non_maximum_suppression(segments, "soft", sigma=0.5)
    # [1, 6) has IoU 0.6 with [2, 5): 0.8 * exp(-0.36 / 0.5) = 0.39 now ranks below [7, 9)
    np.testing.assert_allclose(kept, [[2.0, 5.0, 0.9], [7.0, 9.0, 0.5], [1.0, 6.0, 0.8 * math.exp(-(0.6**2) / 0.5)]])
    # a decayed score below min_score is dropped
    assert len(non_maximum_suppression(segments, "soft", sigma=0.01, min_score=0.01)) == 2


def test_max_segments_keeps_the_best():
    probs = curve((0, 1), (2, 3), (4, 5), (6, 7))
    probs[[0, 2, 4, 6]] = [0.6, 0.9, 0.7, 0.8]
    kept = probs_to_segments(probs, TIMES, 10.0, **PLAIN, max_segments=2)
    assert kept == [(2.0, 3.0, pytest.approx(0.9)), (6.0, 7.0, pytest.approx(0.8))]


def test_uneven_timestamps_are_respected():
    times = np.array([0.25, 0.75, 2.0, 4.0, 6.0])
    probs = np.array([0.1, 0.9, 0.9, 0.1, 0.1])
    assert [s[:2] for s in probs_to_segments(probs, times, 7.0, **PLAIN)] == [(0.5, 3.0)]


def test_defaults_run_on_a_realistic_curve():
    times = (np.arange(128) + 0.5) * 30.0 / 128
    probs = 0.05 + 0.9 * np.exp(-(((times - 12.0) / 3.0) ** 8))
    segments = probs_to_segments(probs, times, 30.0)
    start, end, score = segments[0]
    assert 8.5 < start < 9.5 and 14.5 < end < 15.5 and 0.5 < score <= 1.0
    assert all(0.0 <= s <= e <= 30.0 for s, e, _ in segments)
    assert [s[2] for s in segments] == sorted((s[2] for s in segments), reverse=True)


@pytest.mark.parametrize(
    ("probs", "times", "duration", "message"),
    [
        ([0.5, 0.5], [0.5], 2.0, "equally long"),
        ([0.5, 1.5], [0.5, 1.5], 2.0, r"in \[0, 1\]"),
        ([0.5, float("nan")], [0.5, 1.5], 2.0, "finite"),
        ([0.5, 0.5], [1.5, 0.5], 2.0, "increasing"),
        ([0.5, 0.5], [0.5, 1.5], 0.0, "duration"),
    ],
)
def test_bad_inputs_are_clear_errors(probs, times, duration, message):
    with pytest.raises(ValueError, match=message):
        probs_to_segments(probs, times, duration)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"threshold": 0.5}, "unknown localization setting 'threshold'"),
        ({"thresholds": [0.5, 1.2]}, "thresholds must be a non-empty list"),
        ({"thresholds": []}, "thresholds must be a non-empty list"),
        ({"nms": "greedy"}, "localization.nms must be one of"),
        ({"score": "sum"}, "localization.score must be one of"),
        ({"max_segments": 0}, "max_segments"),
        ({"merge_gap": -1}, "merge_gap"),
    ],
)
def test_bad_localization_settings_are_clear_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        localization_config(section)


def test_a_single_threshold_number_is_accepted():
    assert localization_config({"thresholds": 0.5})["thresholds"] == [0.5]


def test_geometric_cross_class_discounts_snippets_that_fit_several_classes():
    probs = np.array([[[0.8, 0.8, 0.0, 0.3]],
                      [[0.8, 0.0, 0.0, 0.1]]]).transpose(1, 0, 2)  # (videos=1, classes=2, T=4)
    out = cross_class_curves(probs, "geometric")
    assert np.allclose(out[0, 0], [math.sqrt(0.8 * 0.5), math.sqrt(0.8), 0.0, math.sqrt(0.3 * 0.75)])
    assert np.allclose(out[0, 1], [math.sqrt(0.8 * 0.5), 0.0, 0.0, math.sqrt(0.1 * 0.25)])
    assert cross_class_curves(probs, "none") is probs
    alone = probs[:, :1]
    assert np.array_equal(cross_class_curves(alone, "geometric"), alone)
    softmax = np.array([[[0.7, 0.2], [0.3, 0.8]]])  # already shares: left as they are
    assert np.allclose(cross_class_curves(softmax, "geometric"), softmax)
    with pytest.raises(ConfigError, match="cross_class"):
        cross_class_curves(probs, "arithmetic")
    with pytest.raises(ConfigError, match="cross_class"):
        localization_config({"cross_class": "softmax"})
