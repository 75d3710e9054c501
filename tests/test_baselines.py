"""The two training-free baselines (pipeline.modelling.baselines) on hand-made CLIP vectors: the background option
(a class absent from a video stays low; the curve is normalised within its own video) and the priors prototype."""

import math

import numpy as np
import pytest
import torch

from pipeline.features.inputs import PriorTensors, VideoTensors
from pipeline.modelling.baselines import (
    BASELINES,
    CLIP_TEMPERATURE,
    background_curves,
    baseline_curves,
    name_prototypes,
    priors_prototypes,
)
from pipeline.modelling.inference import curves_to_results

# Two classes along the first two axes of a 3-d joint space; the third axis is "nothing of either".
A, B, NOTHING = torch.eye(3)


def _video(*frames: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.stack(list(frames))])  # (1, T, 3)


def test_the_curve_is_the_video_level_class_probability_times_the_min_max_normalised_cosine():
    # cosines with A: 0, 0.6, 1, 0.6 (unit frames); with B: 0, 0, 0, 0
    frames = _video(NOTHING, 0.6 * A + 0.8 * NOTHING, A, 0.6 * A + 0.8 * NOTHING)
    curves = background_curves(frames, torch.stack([A, B]))
    p_a = 1 / (1 + math.exp(-CLIP_TEMPERATURE * 0.55))  # softmax of 100 x the video means 0.55 and 0
    assert curves.shape == (1, 2, 4)
    assert curves[0, 0].tolist() == pytest.approx([0.0, 0.6 * p_a, p_a, 0.6 * p_a], abs=1e-6)
    assert curves[0, 1].tolist() == [0.0, 0.0, 0.0, 0.0]  # a flat curve: nothing stands above the video's level


def test_a_class_absent_from_the_video_stays_low_where_a_plain_softmax_fires():
    # B is never shown, yet its cosine rises where A's does (a look-alike): a per-snippet softmax over the two
    # classes would give B half of each empty snippet; here the video-level probability keeps it near 0
    frames = _video(NOTHING, 0.8 * A + 0.2 * B + 0.57 * NOTHING, A + 0.3 * B, NOTHING)
    curves = background_curves(frames, torch.stack([A, B]))
    assert curves[0, 0].max() == pytest.approx(1.0, abs=1e-6) and curves[0, 0, 0] == 0.0
    assert curves[0, 1].max() < 1e-6
    times, duration = np.array([0.5, 1.5, 2.5, 3.5]), 4.0
    videos = VideoTensors(["v"], frames, None, times[None], np.array([duration]))
    results = curves_to_results(curves.numpy(), videos, ["a", "b"], {"thresholds": [0.3, 0.5, 0.7]})
    assert results["v"] and {r["label"] for r in results["v"]} == {"a"}  # no segment of the absent class
    assert results["v"][0]["segment"] == [1.0, 3.0]


def test_the_normalisation_is_within_each_video_alone():
    # the same class shape at another cosine level in a second video: each curve spans [0, its class weight]
    faint = _video(0.2 * A + NOTHING, 0.4 * A + NOTHING, 0.2 * A + NOTHING)
    strong = _video(0.9 * A + 0.4 * NOTHING, A, 0.9 * A + 0.4 * NOTHING)
    together = background_curves(torch.cat([faint, strong]), torch.stack([A, B]))
    for v, alone in enumerate((faint, strong)):
        assert torch.equal(together[v], background_curves(alone, torch.stack([A, B]))[0])
        assert together[v, 0, 0] == 0.0 and together[v, 0, 1] == together[v, 0].max() > 0.9


def test_curves_lie_in_zero_one_for_any_features():
    rng = torch.Generator().manual_seed(0)
    curves = background_curves(torch.randn(3, 7, 5, generator=rng), torch.randn(4, 5, generator=rng))
    assert curves.shape == (3, 4, 7) and curves.min() >= 0.0 and curves.max() <= 1.0
    # a video's class weights sum to one, so their curves' peaks do too
    assert curves.amax(-1).sum(-1) == pytest.approx(torch.ones(3), abs=1e-5)


def _priors(name, texts, images) -> PriorTensors:
    return PriorTensors(["a"], {}, torch.tensor([name]), torch.tensor([texts]), torch.tensor([images]))


def test_the_priors_prototype_is_the_normalised_mean_of_its_normalised_parts():
    # name, 2 sentences, 2 images of different lengths: each counts once, whatever its norm
    priors = _priors([2.0, 0.0], [[0.0, 5.0], [0.0, 1.0]], [[3.0, 0.0], [0.0, -0.5]])
    mean = (np.array([1, 0]) + [0, 1] + [0, 1] + [1, 0] + [0, -1]) / 5  # (2/5, 1/5)
    assert priors_prototypes(priors)[0].tolist() == pytest.approx((mean / np.linalg.norm(mean)).tolist())
    assert name_prototypes(priors)[0].tolist() == [1.0, 0.0]


def test_both_baselines_run_on_raw_frames_with_their_own_prototype():
    # the name points at A; the sentences and images point at B: the two baselines disagree on which snippet acts
    pairs = torch.stack([torch.stack([B, B])] * 2)  # (C, k, E): k = 2 sentences and images per class
    priors = PriorTensors(["a", "c"], {}, torch.stack([A, NOTHING + 0.1 * B]), pairs, pairs)
    rgb = _video(A, B, 0.5 * A + 0.5 * B)
    videos = VideoTensors(["v"], rgb, None, np.array([[0.5, 1.5, 2.5]]), np.array([3.0]))
    curves = baseline_curves(videos, priors)
    assert list(curves) == list(BASELINES)
    assert curves["baseline_name_bg"][0, 0].argmax() == 0 and curves["baseline_priors"][0, 0].argmax() == 1
    expected = background_curves(rgb, priors_prototypes(priors)).numpy()
    assert np.array_equal(curves["baseline_priors"], expected)
