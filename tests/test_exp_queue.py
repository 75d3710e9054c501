"""Grids on DVC's own executor: two experiments queued with -S, run by `dvc queue start -j 1`, and the table
`python -m pipeline.exp_table` builds from `dvc exp show --json` has both, with their metrics/evaluate.json."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.modelling.experiments import experiment_rows, experiments_table

ROOT = Path(__file__).resolve().parents[1]

# A stage shaped like the evaluate stage: reads the params DVC sets with -S, writes metrics/evaluate.json as the
# evaluate stage does (scoring.metrics_summary of the full reports).
STAGE = '''
import json, os, yaml
from pipeline.modelling.scoring import metrics_summary
p = yaml.safe_load(open("params.yaml"))
score = 0.1 * p["train"]["epochs"] + (0.05 if p["model"]["use_images"] else 0.0)
report = {"mAP": {"0.3": score + 0.2, "0.5": score}, "average_mAP": score + 0.1,
          "tIoUs": {"averaged": ["0.3", "0.5"], "reported": ["0.3", "0.5"]}, "average_tIoU": 0.4,
          "counts": {"videos": 2}}
baseline = {**report, "average_mAP": 0.05, "average_tIoU": 0.3}
os.makedirs("metrics", exist_ok=True)
json.dump(metrics_summary({"grizal": report, "baseline_name_bg": baseline,
                           "baseline_priors": {**baseline, "average_mAP": 0.02}}), open("metrics/evaluate.json", "w"))
'''


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture()
def repo(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PYTHONPATH": str(ROOT)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"model": {"use_images": True}, "train": {"epochs": 1}}))
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": f"{sys.executable} stage.py", "deps": ["stage.py"], "params": ["model", "train"],
        "metrics": [{"metrics/evaluate.json": {"cache": False}}]}}}))
    run(["git", "init", "-q"], tmp_path, env)
    run(["dvc", "init", "-q"], tmp_path, env)
    run(["dvc", "repro", "-q"], tmp_path, env)
    run(["git", "add", "-A"], tmp_path, env)
    run(["git", "commit", "-qm", "baseline"], tmp_path, env)
    return tmp_path, env


def wait_for_queue(cwd: Path, env: dict[str, str], names: set[str]) -> None:
    """Until every named task has left the queue (success or failure); the deadline only guards a hung worker."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        lines = [line.split() for line in run(["dvc", "queue", "status"], cwd, env).splitlines()]
        states = {parts[1]: parts[-1] for parts in lines if len(parts) >= 3 and parts[1] in names}
        if len(states) == len(names) and all(s in ("Success", "Failed") for s in states.values()):
            return
        time.sleep(0.5)
    raise AssertionError("the queue did not finish")


@pytest.mark.slow
def test_queued_experiments_make_the_table(repo):
    cwd, env = repo
    run(["dvc", "exp", "run", "--queue", "-S", "model.use_images=false", "-n", "no-images"], cwd, env)
    run(["dvc", "exp", "run", "--queue", "-S", "train.epochs=3", "-n", "three-epochs"], cwd, env)
    run(["dvc", "queue", "start", "-j", "1"], cwd, env)
    wait_for_queue(cwd, env, {"no-images", "three-epochs"})

    table = run([sys.executable, "-m", "pipeline.exp_table", "--only-experiments", "--out", "table.md"], cwd, env)
    assert (cwd / "table.md").read_text() == table
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    assert set(rows) == {"no-images", "three-epochs"}
    assert table.splitlines()[0] == ("| experiment | baseline | changed | GRIZAL avg mAP | GRIZAL avg tIoU "
                                     "| CLIP, class name + background avg mAP | CLIP, priors prototype avg mAP "
                                     "| state |")
    # use_images false, 1 epoch: score 0.1; use_images true, 3 epochs: score 0.35 (each row from its own run)
    assert rows["no-images"].endswith("| model.use_images=false | 20.0 | 40.0 | 5.0 | 2.0 | success |")
    assert rows["three-epochs"].endswith("| train.epochs=3 | 45.0 | 40.0 | 5.0 | 2.0 | success |")
    workspace = json.loads((cwd / "metrics/evaluate.json").read_text())
    assert workspace["grizal"]["avg_mAP"] == pytest.approx(0.25)  # untouched


def test_rows_of_a_saved_exp_show(tmp_path):
    # The layout of DVC 3's `dvc exp show --json`: the workspace, each commit, and under it its experiments.
    def node(rev, name, params, metrics):
        data = {"rev": rev, "params": {"params.yaml": {"data": params}},
                "metrics": {"metrics/evaluate.json": {"data": metrics}} if metrics else {}}
        return {"rev": rev, "name": name, "data": data, "error": None, "experiments": None}

    base = {"model": {"use_images": True}, "train": {"epochs": 1}}
    report = {"grizal": {"avg_mAP": 0.2, "avg_tIoU": 0.5}, "baseline_name_bg": {"avg_mAP": 0.1},
              "baseline_priors": {"avg_mAP": None}}
    commit = node("a" * 40, "main", base, report)
    commit["experiments"] = [
        {"revs": [node("b" * 40, "no-img", {**base, "model": {"use_images": False}}, report)],
         "executor": {"state": "success"}, "name": "no-img"},
        {"revs": [node("c" * 40, None, {**base, "train": {"epochs": 5}}, None)], "executor": {"state": "queued"},
         "name": "later"},
    ]
    rows = experiment_rows([node("workspace", None, base, report), commit])
    assert [(r.name, r.changed, r.state) for r in rows] == [
        ("main", {}, "commit"), ("no-img", {"model.use_images": False}, "success"),
        ("later", {"train.epochs": 5}, "queued")]
    lines = experiments_table(rows).splitlines()
    assert lines[3] == "| no-img | main | model.use_images=false | 20.0 | 50.0 | 10.0 | - | success |"
    assert lines[4] == "| later | main | train.epochs=5 | - | - | - | - | queued |"
    (tmp_path / "shown.json").write_text(json.dumps([commit]))
    result = subprocess.run([sys.executable, "-m", "pipeline.exp_table", "--from", str(tmp_path / "shown.json")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.splitlines()[3] == lines[3]
    (tmp_path / "bad.json").write_text("{}")
    result = subprocess.run([sys.executable, "-m", "pipeline.exp_table", "--from", str(tmp_path / "bad.json")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: ") and "\n" not in result.stderr.strip()


def test_older_layouts_of_the_evaluate_metrics_still_read():
    from pipeline.modelling.experiments import summary_of

    full = {"mAP": {"0.5": 0.3}, "average_mAP": 0.2, "average_tIoU": 0.4}
    nested = {"grizal": full, "baseline": {**full, "average_mAP": 0.1}}  # the full reports, before the summary
    assert summary_of(nested, "grizal") == {"avg_mAP": 0.2, "avg_tIoU": 0.4}
    assert summary_of(nested, "baseline") == {"avg_mAP": 0.1, "avg_tIoU": 0.4}
    assert summary_of(full, "grizal") == {"avg_mAP": 0.2, "avg_tIoU": 0.4}  # one flat report
    assert summary_of(full, "baseline") == {"avg_mAP": None, "avg_tIoU": None}
    assert summary_of(None, "grizal") == {"avg_mAP": None, "avg_tIoU": None}
    assert summary_of({"baseline_priors": full}, "baseline_priors") == {"avg_mAP": 0.2}  # a baseline: avg mAP only


def test_an_experiment_on_another_data_set_is_named_by_its_group_choices():
    """`-S dataset=activitynet -S split=50-50 -S prepare.split_id=3` changes dozens of keys; the row says what was
    chosen and what differs from that composed setting. A null is shown as null, a missing key as removed."""
    from pipeline.composition import compose_params

    @functools.cache
    def composed(*overrides):
        return compose_params(list(overrides), ROOT / "conf")

    def compose(overrides):
        return json.loads(json.dumps(composed(*overrides)))

    def node(rev, name, params):
        return {"rev": rev, "name": name, "data": {"rev": rev, "params": {"params.yaml": {"data": params}}}}

    demo = compose([])
    swept = compose(["dataset=activitynet", "split=50-50"])
    swept["prepare"]["split_id"] = 3
    nulled = json.loads(json.dumps(demo))
    nulled["train"]["T"] = None
    del nulled["loss"]["objective"]
    commit = node("a" * 40, "main", demo)
    commit["experiments"] = [{"revs": [node("b" * 40, "anet", swept)], "executor": {"state": "queued"}},
                             {"revs": [node("c" * 40, "nulls", nulled)], "executor": {"state": "queued"}}]
    rows = experiment_rows([commit], compose)
    assert rows[1].changed == {"dataset": "activitynet", "split": "50-50", "prepare.split_id": 3}
    assert experiments_table(rows).splitlines()[4].split(" | ")[2] == "loss.objective=(removed), train.T=null"
    assert len(experiment_rows([commit])[1].changed) > 20  # without the composition: every key the setting sets
    on_thumos = node("d" * 40, "thumos", compose(["dataset=thumos14"]))
    on_thumos["experiments"] = [{"revs": [node("e" * 40, "half", compose(["dataset=thumos14", "split=50-50"]))],
                                 "executor": {"state": "queued"}}]
    assert experiment_rows([on_thumos], compose)[1].changed == {"split": "50-50"}
