"""The results grid: the same numbers with worker processes as in one process, errors that surface as one line
from a worker, every finished run kept and reused, and runs without predictions in the table."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from support.params_edit import grid_values
from typer.testing import CliRunner

import pipeline.modelling.fit
import pipeline.modelling.inference
from pipeline.common import UserError
from pipeline.modelling.baselines import BASELINES
from pipeline.modelling.grid import grid_jobs, results_table, run_grid
from pipeline.results import app

ROOT = Path(__file__).resolve().parents[1]


def test_grid_jobs_order_and_unknown_variant(tiny_world):
    values = grid_values(tiny_world)
    assert grid_jobs(values) == [("closed", None, "GRIZAL", 0), ("open", 0, "GRIZAL", 0), ("open", 0, "w/o Fourier", 0)]
    values["results"]["variants"] = ["GRIZAL", "w/o colour"]
    with pytest.raises(UserError, match="unknown variant 'w/o colour'"):
        grid_jobs(values)


def test_grizal_runs_every_seed_and_ablations_their_own(tiny_world):
    values = grid_values(tiny_world, seeds=[0, 1], ablation_seeds=[2])
    assert grid_jobs(values) == [("closed", None, "GRIZAL", 0), ("closed", None, "GRIZAL", 1),
                                 ("open", 0, "GRIZAL", 0), ("open", 0, "GRIZAL", 1), ("open", 0, "w/o Fourier", 2)]
    del values["results"]["ablation_seeds"]  # ablations: the first of the seeds
    assert [job[3] for job in grid_jobs(values)] == [0, 1, 0, 1, 0]
    del values["results"]["seeds"]
    values["train"]["seed"] = 5  # without results.seeds: the train stage's seed
    assert [job[3] for job in grid_jobs(values)] == [5, 5, 5]
    values["results"]["seeds"] = [1, 1]
    with pytest.raises(UserError, match="results.seeds: expected a non-empty list of distinct integers"):
        grid_jobs(values)


def _run(protocol, split, variant, seed, average, baseline=0.0):
    metrics = {"mAP": {"0.5": average}, "average_mAP": average, "average_tIoU": 0.5}
    name_bg = {**metrics, "mAP": {"0.5": baseline}, "average_mAP": baseline}
    return {"protocol": protocol, "split": split, "variant": variant, "seed": seed, "grizal": metrics,
            "baseline_name_bg": name_bg, "baseline_priors": {**name_bg, "average_mAP": baseline / 2}}


def test_the_table_is_mean_and_sample_std_over_splits_and_seeds_and_the_baselines_once_per_split():
    grid = {"tious": ["0.5"], "runs": [
        _run("open", 0, "GRIZAL", 0, 0.1, baseline=0.2), _run("open", 0, "GRIZAL", 1, 0.3, baseline=0.2),
        _run("open", 1, "GRIZAL", 0, 0.5, baseline=0.4), _run("open", 1, "GRIZAL", 1, 0.7, baseline=0.4),
        _run("open", 0, "w/o Fourier", 0, 0.2), _run("open", 1, "w/o Fourier", 0, 0.4)]}
    rows = {row.split(" | ")[1]: row.strip(" |").split(" | ") for row in results_table(grid).splitlines()[2:]}
    assert (rows["GRIZAL"][3], rows["GRIZAL"][5]) == ("40.0 ± 25.8", "4")  # avg mAP over 4 runs (sample std), runs
    name_bg, priors = rows["CLIP, class name + background"], rows["CLIP, priors prototype"]
    assert (name_bg[3], name_bg[5]) == ("30.0 ± 14.1", "2")  # once per split: it has no seed
    assert (priors[3], priors[5]) == ("15.0 ± 7.1", "2")
    assert list(rows)[:3] == ["GRIZAL", "CLIP, class name + background", "CLIP, priors prototype"]
    assert (rows["w/o Fourier"][3], rows["w/o Fourier"][5]) == ("30.0 ± 14.1", "2")


@pytest.mark.slow
def test_a_second_seed_is_a_new_run_and_the_first_is_reused(tiny_world, finished_grid, tmp_path, monkeypatch):
    out = shutil.copytree(finished_grid[0], tmp_path / "results")
    started = _trained_folders(monkeypatch, out)
    values = grid_values(tiny_world, closed_set=False, seeds=[0, 1], ablation_seeds=[0])
    grid = run_grid(values, tiny_world["index"], tiny_world["features"], out, log=_quiet)
    assert started == ["split_0/grizal/seed_1"]
    assert [(r["variant"], r["seed"]) for r in grid["runs"]] == [("GRIZAL", 0), ("GRIZAL", 1), ("w/o Fourier", 0)]
    assert grid["runs"][0] == finished_grid[1]["runs"][0] and grid["runs"][2] == finished_grid[1]["runs"][1]
    assert grid["runs"][1]["key"] != grid["runs"][0]["key"]


@pytest.mark.slow
def test_workers_give_the_same_runs_as_one_process(tiny_world, tmp_path):
    assert torch.get_num_threads() == 1  # one thread per worker either way, so the floats match exactly
    values = grid_values(tiny_world, closed_set=False)
    one = run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "one", log=lambda _m: None)
    values["results"]["workers"] = 2
    two = run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "two", log=lambda _m: None)
    assert [(r["split"], r["variant"]) for r in two["runs"]] == [(0, "GRIZAL"), (0, "w/o Fourier")]
    for a, b in zip(one["runs"], two["runs"], strict=True):
        assert all(a[m] == b[m] for m in ("grizal", *BASELINES))
    for variant in ("grizal", "w_o_fourier"):
        metrics = json.loads((tmp_path / "two" / "split_0" / variant / "seed_0" / "metrics.json").read_text())
        assert metrics["grizal"] == two["runs"][0 if variant == "grizal" else 1]["grizal"]
        record = json.loads((tmp_path / "two" / "split_0" / variant / "seed_0" / "run.json").read_text())
        assert record == two["runs"][0 if variant == "grizal" else 1]  # stored by the worker that ran it
    assert results_table(one) == results_table(two)
    logs = []
    again = run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "two", log=logs.append)
    assert again == two and len(logs) == 2 and all(line.endswith("reused") for line in logs)


def test_a_worker_error_reaches_the_parent_as_one_line(tiny_world, tmp_path):
    values = grid_values(tiny_world, closed_set=False, workers=2)
    values["model"].update(width=30, heads=4)  # raised in the workers, when each builds its model
    with pytest.raises(UserError, match="params.yaml: .*divisible") as err:
        run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path, log=lambda _m: None)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("workers", [0, "2", True, 1.5])
def test_bad_workers_setting(tiny_world, tmp_path, workers):
    with pytest.raises(UserError, match="results.workers must be an integer >= 1"):
        run_grid(grid_values(tiny_world, workers=workers), tiny_world["index"], tiny_world["features"], tmp_path)


def _quiet(_message):
    pass


def _trained_folders(monkeypatch, out):
    """Records the run folder of every training that starts (relative to ``out``)."""
    started, real = [], pipeline.modelling.fit.train

    def counting(index, split, features, model_cfg, loss_cfg, cfg, out_dir, **kwargs):
        started.append(Path(out_dir).relative_to(out).as_posix())
        return real(index, split, features, model_cfg, loss_cfg, cfg, out_dir, **kwargs)

    monkeypatch.setattr(pipeline.modelling.fit, "train", counting)
    return started


@pytest.fixture(scope="module")
def finished_grid(tiny_world, tmp_path_factory):
    """Split 0 with GRIZAL and w/o Fourier, run once; each test works on a copy (the tiny world's test video has
    one class: too few for a closed-set run)."""
    out = tmp_path_factory.mktemp("grid") / "results"
    values = grid_values(tiny_world, closed_set=False)
    return out, run_grid(values, tiny_world["index"], tiny_world["features"], out, log=_quiet)


def test_a_rerun_reuses_every_finished_run(tiny_world, finished_grid, tmp_path, monkeypatch):
    out = shutil.copytree(finished_grid[0], tmp_path / "results")

    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(pipeline.modelling.fit, "train", no_training)
    logs = []
    values = grid_values(tiny_world, closed_set=False)
    values["train"]["seed"] = 0  # the default, written out
    values["localization"]["nms"] = "soft"  # likewise
    values["prepare"]["split_id"] = 1  # the train stage's split; each run sets its own
    again = run_grid(values, tiny_world["index"], tiny_world["features"], out, log=logs.append)
    assert again == finished_grid[1]
    assert [line.split(":")[0] for line in logs] == ["open split=0 GRIZAL seed=0", "open split=0 w/o Fourier seed=0"]
    assert all(line.endswith("reused") for line in logs)


def test_a_changed_setting_retrains_only_the_runs_it_changes(tiny_world, finished_grid, tmp_path, monkeypatch):
    out = shutil.copytree(finished_grid[0], tmp_path / "results")
    started = _trained_folders(monkeypatch, out)
    values = grid_values(tiny_world, closed_set=False)
    values["model"]["use_fourier"] = False  # what the w/o Fourier variant already ran with
    grid = run_grid(values, tiny_world["index"], tiny_world["features"], out, log=_quiet)
    assert started == ["split_0/grizal/seed_0"]
    assert grid["runs"][1] == finished_grid[1]["runs"][1]
    assert grid["runs"][0]["key"] != finished_grid[1]["runs"][0]["key"]


def test_reported_columns_change_the_table_not_the_runs(tiny_world, finished_grid, tmp_path, monkeypatch):
    out = shutil.copytree(finished_grid[0], tmp_path / "results")

    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(pipeline.modelling.fit, "train", no_training)
    values = grid_values(tiny_world, closed_set=False)
    values["evaluate"]["report_tious"] = [0.5]  # ActivityNet-style: average over all, show some
    grid = run_grid(values, tiny_world["index"], tiny_world["features"], out, log=_quiet)
    assert grid["tious"] == ["0.5"] and grid["runs"] == finished_grid[1]["runs"]
    header, _, first = results_table(grid).splitlines()[:3]
    assert header == "| setting | method | mAP@0.5 | avg mAP | avg tIoU | runs | Δ avg mAP vs GRIZAL [95% CI] |"
    average = finished_grid[1]["runs"][0]["grizal"]["average_mAP"]  # still the mean over 0.3 and 0.5
    assert first.split(" | ")[3] == f"{100 * average:.1f}"


def test_a_run_interrupted_before_its_record_is_redone(tiny_world, tmp_path, monkeypatch):
    values = grid_values(tiny_world, closed_set=False)
    out = tmp_path / "results"
    real_evaluate, calls = pipeline.modelling.inference.evaluate_model, []

    def killed_in_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after the second run trained, before it was scored
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(pipeline.modelling.inference, "evaluate_model", killed_in_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_grid(values, tiny_world["index"], tiny_world["features"], out, log=_quiet)
    assert (out / "split_0" / "grizal" / "seed_0" / "run.json").is_file()
    assert (out / "split_0" / "w_o_fourier" / "seed_0" / "model.pt").is_file()
    assert not (out / "split_0" / "w_o_fourier" / "seed_0" / "run.json").exists()

    monkeypatch.setattr(pipeline.modelling.inference, "evaluate_model", real_evaluate)
    started = _trained_folders(monkeypatch, out)
    logs = []
    grid = run_grid(values, tiny_world["index"], tiny_world["features"], out, log=logs.append)
    assert started == ["split_0/w_o_fourier/seed_0"]
    assert logs[0].endswith("reused") and not logs[1].endswith("reused")
    assert [run["variant"] for run in grid["runs"]] == ["GRIZAL", "w/o Fourier"]


def test_a_run_without_predictions_is_zeros_and_na(tiny_world, tmp_path):
    values = grid_values(tiny_world, closed_set=False, variants=["GRIZAL"])
    values["localization"] = {"min_length": 1e6}  # no segment is that long: nothing is predicted
    values["train"]["seed"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["--params", str(tmp_path / "params.yaml"), "--prepare",
                                      str(tiny_world["root"] / "prepare"), "--features",
                                      str(tiny_world["features"]), "--demo", str(tiny_world["root"]),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [line.split(" | ") for line in (out / "results.md").read_text().splitlines()[2:]]
    assert [row[1] for row in rows] == ["GRIZAL", *BASELINES.values(), "reference: shape visible",
                                        "reference: shape moving", "reference: shape moving in its direction"]
    for row in rows[:3]:
        assert row[2:6] == ["0.0", "0.0", "0.0", "n/a"]  # mAP@0.3, mAP@0.5, avg mAP, avg tIoU
    # the reference detectors are scored by the same localization: nothing is longer than min_length either
    assert all(row[4] == "0.0" for row in rows[3:])
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["protocol"], r["split"], r["seed"], r["variant"]) for r in runs] == [("open", 0, 3, "GRIZAL")]
    for method in ("grizal", *BASELINES):
        assert runs[0][method]["counts"]["predictions"] == 0
        assert runs[0][method]["mAP"] == {"0.3": 0.0, "0.5": 0.0} and runs[0][method]["average_mAP"] == 0.0
        assert runs[0][method]["average_tIoU"] is None


def test_the_results_command_loads_no_torch_for_help():
    heavy = "{'torch', 'pipeline.modelling.fit', 'pipeline.modelling.inference'}"
    code = f"import sys, pipeline.results; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
