import numpy as np
import pytest
import torch

from grizal.temporal import resample, snippet_times


def test_snippet_times_are_centres():
    assert snippet_times(10.0, 4) == pytest.approx([1.25, 3.75, 6.25, 8.75])
    with pytest.raises(ValueError):
        snippet_times(0.0, 4)
    with pytest.raises(ValueError):
        snippet_times(5.0, 0)


def test_linear_interpolation_between_frames():
    ts = np.array([0.0, 1.0, 2.0, 4.0])
    features = np.stack([ts * 2, ts + 10], axis=1).astype(np.float32)  # linear in time
    out = resample(features, ts, duration=4.0, T=8)
    centres = snippet_times(4.0, 8)
    assert out.shape == (8, 2) and out.dtype == np.float32
    assert out[:, 0] == pytest.approx(2 * centres)
    assert out[:, 1] == pytest.approx(centres + 10)


def test_clamped_outside_the_sampled_span():
    ts = np.array([1.0, 2.0])
    features = np.array([[1.0], [3.0]], dtype=np.float32)
    out = resample(features, ts, duration=4.0, T=4)  # centres 0.5, 1.5, 2.5, 3.5
    assert out[:, 0] == pytest.approx([1.0, 2.0, 3.0, 3.0])


def test_single_frame_and_upsampling():
    out = resample(np.array([[5.0, 6.0]], dtype=np.float32), np.array([0.3]), duration=1.0, T=3)
    assert out == pytest.approx(np.array([[5.0, 6.0]] * 3))
    ts = np.arange(5) * 0.5
    feats = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    up = resample(feats, ts, duration=2.5, T=256)
    assert up.shape == (256, 3)
    assert up.min() >= feats.min() - 1e-6 and up.max() <= feats.max() + 1e-6  # interpolation, no overshoot


def test_torch_matches_numpy():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(17, 6)).astype(np.float32)
    ts = np.sort(rng.uniform(0, 30, size=17))
    expected = resample(feats, ts, 31.0, 100)
    got = resample(torch.from_numpy(feats), torch.from_numpy(ts), 31.0, 100)
    assert isinstance(got, torch.Tensor)
    assert got.numpy() == pytest.approx(expected, abs=1e-5)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="strictly increasing"):
        resample(np.zeros((3, 2)), np.array([0.0, 1.0, 1.0]), 2.0, 4)
    with pytest.raises(ValueError, match="timestamps"):
        resample(np.zeros((3, 2)), np.array([0.0, 1.0]), 2.0, 4)
    with pytest.raises(ValueError, match="non-empty"):
        resample(np.zeros((0, 2)), np.zeros(0), 2.0, 4)
