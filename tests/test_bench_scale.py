"""benchmarks/bench_scale.py at a tiny size: synthetic features through the import path into real stores, one
epoch of training and the evaluation, each data set's protocol; and its extrapolation arithmetic."""

import json

import pytest

from benchmarks.bench_scale import configs, extrapolation, fit_linear, run_step, sizes, synthesize, work_units


def test_sizes_keep_real_class_counts_and_scale_charades_queries():
    assert sizes("thumos14", 1.0) == {"train": 200, "test": 213, "classes": 20}
    assert sizes("activitynet", 0.5) == {"train": 5000, "test": 2463, "classes": 200}
    assert sizes("charades", 1.0) == {"train": 5338, "test": 1334, "train_queries": 12408, "test_queries": 3720}


def test_paper_sections_lay_the_paper_size_over_the_demo():
    demo, paper = configs("demo"), configs("paper")
    model = paper["model"]
    assert (model["width"], model["vle_layers"], model["image_tokens"]) == (512, 7, "patches")
    assert paper["train"]["T"] is None and paper["train"]["lr"] == 0.0001  # the stores' T, the paper's schedule
    assert paper["loss"] == demo["loss"] and paper["model"]["k"] == demo["model"]["k"]


def test_linear_fit_reads_the_full_size_off_the_work_units():
    assert fit_linear([(10, 3.0), (20, 5.0)]) == pytest.approx((1.0, 0.2))  # 1 s fixed, 0.2 s a unit
    assert fit_linear([(10, 3.0)]) is None
    counts = {"videos_train": 20, "videos_test": 10, "classes_seen": 15, "classes_tested": 5}
    assert work_units("thumos14", "evaluate", counts) == 50  # forward passes: videos x tested classes
    assert work_units("charades", "evaluate", counts) == 5  # one per query
    assert work_units("thumos14", "train", counts) == 20 and work_units("thumos14", "import", counts) == 30
    rows = [{"dataset": "thumos14", "model": "demo", "step": "evaluate", "units": u, "wall_s": 1 + 0.01 * u,
             "cpu_s": 0.5 + 0.01 * u} for u in (50, 100)]
    (entry,) = extrapolation(rows)
    assert entry["units_full"] == 213 * 5  # THUMOS14 75/25: 213 test videos x 5 unseen classes
    assert entry["wall_s_full"] == pytest.approx(11.65, abs=0.06)  # 1 + 0.01 x 1065
    assert entry["cpu_s_full"] == pytest.approx(11.15, abs=0.06)


def test_charades_world_trains_and_evaluates_per_query(tmp_path):
    counts = synthesize("charades", 0.001, tmp_path)
    assert counts == {"videos_train": 5, "videos_test": 2, "classes_seen": 12, "classes_tested": 4}
    for step in ("import", "train", "evaluate"):
        figures = run_step(step, tmp_path, "charades", "demo", "cpu")
        assert figures["wall_s"] > 0 and figures["cpu_s"] > 0 and figures["peak_rss_mb"] > 0
    metrics = json.loads((tmp_path / "evaluate_demo" / "metrics.json").read_text())
    assert metrics["grizal"]["counts"]["queries"] == 4
