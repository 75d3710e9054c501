"""Probability-curve figures of the evaluate stage."""

import numpy as np
import pytest
from PIL import Image

from pipeline.modelling.plots import plot_probability_curves


def curve(video="video_test_0000004", label="Cricket Bowling", n=50):
    times = np.linspace(0, 20, n)
    probs = np.exp(-(((times - 8) / 2) ** 2))
    return (video, label, times, probs, [[6.0, 10.0], [15, 16]], np.array([[6.5, 9.5]]))


def test_one_png_per_curve_with_readable_names(tmp_path):
    paths = plot_probability_curves([curve(), curve("v/2", "a b", n=10)], tmp_path / "plots", threshold=0.5)
    assert [p.name for p in paths] == ["video_test_0000004__Cricket_Bowling.png", "v_2__a_b.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (900, 280)
            # not a blank canvas: the curve, shading and bars add colours
            assert len(image.convert("RGB").getcolors(1 << 16) or []) > 10
    assert not [p for p in (tmp_path / "plots").iterdir() if p.suffix != ".png"]  # no temporary leftovers


def test_colliding_names_get_a_suffix_and_empty_segments_are_fine(tmp_path):
    video, label, times, probs, _, _ = curve()
    paths = plot_probability_curves(
        [(video, label, times, probs, [], []), (video, label, times, probs, np.zeros((0, 2)), [])], tmp_path
    )
    assert [p.name for p in paths] == [f"{video}__Cricket_Bowling.png", f"{video}__Cricket_Bowling-2.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_mismatched_inputs_raise(tmp_path):
    video, label, times, probs, gt, pred = curve()
    with pytest.raises(ValueError, match="50 times but 49 probabilities"):
        plot_probability_curves([(video, label, times, probs[:-1], gt, pred)], tmp_path)
    with pytest.raises(ValueError, match=r"gt_segments must be \(N, 2\)"):
        plot_probability_curves([(video, label, times, probs, [1, 2, 3], pred)], tmp_path)
