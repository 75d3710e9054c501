"""benchmarks/bench_scale.py at a tiny size: synthetic features through the import path into real stores, one
epoch of training and the evaluation, each data set's protocol; and its extrapolation arithmetic."""

import json

import pytest

from benchmarks.bench_scale import extrapolation, fit_power, run_step, sizes, synthesize


def test_sizes_keep_real_class_counts_and_scale_charades_queries():
    assert sizes("thumos14", 1.0) == {"train": 200, "test": 213, "classes": 20}
    assert sizes("activitynet", 0.5) == {"train": 5000, "test": 2463, "classes": 200}
    assert sizes("charades", 1.0) == {"train": 5338, "test": 1334, "train_queries": 12408, "test_queries": 3720}


def test_power_fit_recovers_a_known_law_and_extrapolates_to_full_size():
    a, b = fit_power([(0.01, 2.0), (0.02, 8.0)])  # time = 20000 x f^2
    assert b == pytest.approx(2.0) and a == pytest.approx(20000.0)
    assert fit_power([(0.01, 2.0)]) is None
    rows = [{"dataset": "thumos14", "model": "demo", "step": "train", "fraction": f, "wall_s": 100 * f,
             "cpu_s": 50 * f ** 2} for f in (0.1, 0.2)]
    assert extrapolation(rows) == [{"dataset": "thumos14", "model": "demo", "step": "train", "wall_s_exponent": 1.0,
                                    "wall_s_full": 100.0, "cpu_s_exponent": 2.0, "cpu_s_full": 50.0}]


def test_charades_world_trains_and_evaluates_per_query(tmp_path):
    counts = synthesize("charades", 0.001, tmp_path)
    assert counts == {"videos_train": 5, "videos_test": 2, "classes_seen": 12, "classes_tested": 4}
    for step in ("import", "train", "evaluate"):
        figures = run_step(step, tmp_path, "charades", "demo", "cpu")
        assert figures["wall_s"] > 0 and figures["cpu_s"] > 0 and figures["peak_rss_mb"] > 0
    metrics = json.loads((tmp_path / "evaluate_demo" / "metrics.json").read_text())
    assert metrics["grizal"]["counts"]["queries"] == 4
