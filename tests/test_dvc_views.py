"""What DVC's own views read: metrics/evaluate.json is the short summary (the full reports go to the evaluate
stage's metrics.json), the train stage draws its curves against the epoch, and dvc.yaml declares titled plots
with an epoch axis and one metric file."""

import json
from pathlib import Path

import yaml
from PIL import Image

from pipeline.modelling.fit import TrainConfig, train
from pipeline.modelling.inference import evaluate_model
from pipeline.modelling.plots import plot_training, training_figure
from pipeline.modelling.scoring import metrics_summary

ROOT = Path(__file__).resolve().parents[1]


def test_the_summary_keeps_the_two_averages_of_grizal_and_the_average_mAP_of_each_baseline():
    scored = {"mAP": {"0.3": 0.5, "0.5": 0.3}, "average_mAP": 0.4, "average_tIoU": 0.25, "recall": {"R@1": 0.1}}
    unscored = {"scored": False, "reason": "no ground truth", "counts": {"predictions": 3}}
    assert metrics_summary({"grizal": scored, "baseline_name_bg": scored, "baseline_priors": unscored}) == {
        "grizal": {"avg_mAP": 0.4, "avg_tIoU": 0.25}, "baseline_name_bg": {"avg_mAP": 0.4},
        "baseline_priors": {"avg_mAP": None}}


def test_evaluate_writes_the_summary_and_the_full_reports(tiny_world, tmp_path):
    outcome = evaluate_model(tiny_world["index"], tiny_world["split"], tiny_world["features"],
                             tiny_world["checkpoint"], {}, [0.3, 0.5], tmp_path / "evaluate", n_plots=0,
                             device="cpu", metrics_path=tmp_path / "metrics" / "evaluate.json")
    full = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert full == outcome["metrics"] and set(full["grizal"]["mAP"]) == {"0.3", "0.5"}
    summary = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    assert summary == metrics_summary(full)
    assert summary["grizal"]["avg_mAP"] == full["grizal"]["average_mAP"]


def test_the_train_stage_draws_its_curves_against_the_epoch(tiny_world, tmp_path):
    live = tmp_path / "live"
    train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {},
          TrainConfig(epochs=2, batch_size=8, device="cpu"), tmp_path / "train", progress=False,
          log=lambda *_: None, live_dir=live)
    with Image.open(live / "plots" / "training.png") as image:
        image.load()
        assert image.format == "PNG" and image.width == 800
    history = [{"epoch": 1, "total": 2.0, "bce": 0.5, "lr": 1e-3}, {"epoch": 2, "total": 1.0, "bce": 0.4, "lr": 5e-4}]
    fig = training_figure(history)
    loss_ax, lr_ax = fig.axes
    assert lr_ax.get_xlabel() == "epoch" and loss_ax.get_title(loc="left") == "Training loss per epoch"
    assert [line.get_label() for line in loss_ax.get_lines()] == ["total", "bce"]
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2] and loss_ax.get_yscale() == "log"
    assert plot_training(history, tmp_path / "t.png").stat().st_size > 1000


def test_dvc_yaml_declares_one_metric_file_and_titled_epoch_plots():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    metrics = [next(iter(m)) if isinstance(m, dict) else m
               for stage in pipeline["stages"].values() for m in stage.get("metrics", [])]
    assert metrics == ["metrics/evaluate.json"]
    assert not any("plots" in stage for stage in pipeline["stages"].values())  # all plots are declared at the top
    train_outs = {next(iter(o)): o[next(iter(o))] for o in pipeline["stages"]["train"]["outs"] if isinstance(o, dict)}
    assert train_outs["metrics/train/plots"] == {"cache": False}
    assert train_outs["metrics/train/metrics.json"] == {"cache": False}
    plots = {next(iter(p)) if isinstance(p, dict) else p: (p[next(iter(p))] if isinstance(p, dict) else {})
             for p in pipeline["plots"]}
    assert set(plots) == {"metrics/train/plots/metrics/loss", "metrics/train/plots/metrics/lr.tsv",
                          "metrics/train/plots/training.png"}
    for name, props in plots.items():
        if not name.endswith(".png"):
            assert props["x"] == "step" and props["x_label"] == "epoch" and props["title"], name
    assert "cache/evaluate/metrics.json" in pipeline["stages"]["evaluate"]["outs"]
