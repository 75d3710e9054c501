"""benchmarks.choose_setting on the tiny world: validation runs choose, the closed-set run is a labelled diagnostic,
and runs in worker processes train what the serial runs train."""

import sys

import yaml
from support.params_edit import grid_values

from benchmarks import choose_setting


def _params(tiny_world, tmp_path):
    values = grid_values(tiny_world)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    return values, path


def test_each_option_gets_its_validation_runs_and_one_closed_set_diagnostic(tiny_world, tmp_path, monkeypatch,
                                                                          capsys):
    _values, path = _params(tiny_world, tmp_path)
    monkeypatch.setattr(sys, "argv", ["choose_setting", "--params", str(path), "--prepare",
                                      str(tiny_world["root"] / "prepare"), "--features", str(tiny_world["features"]),
                                      "--option", "", "--option", "model.use_fourier=false", "--seeds", "0,1",
                                      "--closed", "--device", "cpu"])
    choose_setting.main()
    out = capsys.readouterr().out
    runs = [line for line in out.splitlines() if " seed " in line and "avg mAP" in line]
    assert len(runs) == 2 * (2 + 1)  # per option: split 0 x seeds 0, 1 on validation, one closed-set run
    assert sum(line.startswith("(as configured) closed-set seed 0") for line in runs) == 1
    assert sum("held out" in line for line in runs) == 4  # validation runs name their held-out classes
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "closed-set test avg mAP (%, diagnostic)" in rows["option"]
    for option in ("(as configured)", "model.use_fourier=false"):
        cells = [cell.strip() for cell in rows[option].split("|")[1:-1]]
        assert cells[4] == "2" and cells[5] not in ("", "-")  # 2 validation runs, a closed-set figure
        assert all(cell not in ("", "-") for cell in cells[1:4])  # GRIZAL and both baselines


def test_worker_processes_train_what_the_serial_runs_train(tiny_world, tmp_path):
    import torch

    values, _path = _params(tiny_world, tmp_path)
    common = {"index": str(tiny_world["root"] / "prepare" / "index.json"), "features": str(tiny_world["features"]),
              "device": "cpu", "threads": 1}
    jobs = choose_setting.jobs_of(values, ["", "train.lr=0.01"], [0], [0], False, tmp_path / "runs", common)
    serial = choose_setting.run_jobs(jobs, 1, report=lambda _text: None)
    again = [{**job, "work": job["work"] + "_again"} for job in jobs]
    parallel = choose_setting.run_jobs(again, 2, report=lambda _text: None)
    assert [(r["grizal"], r["held_out"]) for r in parallel] == [(r["grizal"], r["held_out"]) for r in serial]
    weights = [[torch.load(f"{job['work']}/model.pt", weights_only=True)["model"] for job in runs]
               for runs in (jobs, again)]
    for one, other in zip(*weights, strict=True):
        assert one.keys() == other.keys() and all(torch.equal(one[key], other[key]) for key in one)
    first, second = weights[0]  # the two options trained different models
    assert not all(torch.equal(first[key], second[key]) for key in first)


def test_closed_set_validation_runs_hold_out_training_videos_and_choose_alongside(tiny_world, tmp_path, monkeypatch,
                                                                                 capsys):
    _values, path = _params(tiny_world, tmp_path)
    monkeypatch.setattr(sys, "argv", ["choose_setting", "--params", str(path), "--prepare",
                                      str(tiny_world["root"] / "prepare"), "--features", str(tiny_world["features"]),
                                      "--option", "", "--option", "train.lr=0.01", "--seeds", "0,1", "--splits",
                                      "none", "--closed-validation", "--device", "cpu"])
    choose_setting.main()
    out = capsys.readouterr().out
    runs = [line for line in out.splitlines() if " seed " in line and "avg mAP" in line]
    assert len(runs) == 2 * 2 and all(" closed-set validation seed " in line for line in runs)
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "closed-set validation avg mAP (%)" in rows["option"] and "diagnostic" not in rows["option"]
    for option in ("(as configured)", "train.lr=0.01"):
        cells = [cell.strip() for cell in rows[option].split("|")[1:-1]]
        assert cells[4] == "0" and cells[5] not in ("", "-")  # no open validation run, a closed-set figure
