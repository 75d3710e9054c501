"""The README's experiments workflow (`dvc exp run -S ... evaluate`, `dvc exp show --only-changed --drop cache/`,
`dvc metrics diff`, `dvc plots diff`, `python -m pipeline.exp_table`), command for command as the README prints
it, on a copy of the quick start's finished demo project with its baseline committed; then what DVC itself records
of the experiment next to that baseline (`dvc exp show --json`, `dvc metrics diff`, `dvc plots`)."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.doc_workflows import commands
from support.project_copy import copy_prepared, project_env

pytestmark = pytest.mark.slow
TERMINAL = 120  # columns DVC's own tables must fit in
METRIC_FILES = ("metrics/train/metrics.json", "metrics/evaluate.json")  # git-tracked; only evaluate's a DVC metric


def _run(command: str | list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, shell=isinstance(command, str), executable="/bin/bash" if isinstance(
        command, str) else None, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def _stdout(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def _width(output: str) -> int:
    return max((len(line.rstrip()) for line in output.splitlines()), default=0)


def _metrics_of(rows: list[dict]) -> list[dict]:
    """Every commit's or experiment's metrics in `dvc exp show --json`, keyed by file."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and "metrics" in data:
                found.append({"rev": data.get("rev", node.get("rev")), "name": node.get("name") or data.get("name"),
                              "metrics": data["metrics"] or {}})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(rows)
    return found


@pytest.fixture(scope="module")
def project(quickstart_project, tmp_path_factory):
    source = quickstart_project[0]
    dest = copy_prepared(source, tmp_path_factory.mktemp("experiments"))
    env = project_env(OMP_NUM_THREADS="1", COLUMNS="400")
    env.pop("PYTHONPATH", None)  # the copy's own code runs
    for name in METRIC_FILES:
        assert (dest / name).is_file(), name
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=dest, env=env)
        assert ignored.returncode == 1, f"{name} is git-ignored"
    assert not (dest / "metrics/train/dvc.yaml").exists()  # DVCLive writes no dvc.yaml of its own
    baseline = json.loads((dest / "metrics/train/metrics.json").read_text())
    assert baseline["step"] == 1 and "total" in baseline["loss"] and "lr" in baseline
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "baseline"], dest, env)
    return dest, env


def test_the_readme_experiments_workflow(project):
    dest, env = project
    workflow = commands("experiments")
    assert workflow == ["dvc exp run -S train.epochs=40 evaluate", "dvc exp show --only-changed --drop cache/",
                        "dvc metrics diff", "dvc plots diff", "python -m pipeline.exp_table"]
    head = _stdout(["git", "rev-parse", "HEAD"], dest, env).strip()
    grid = (dest / "cache/results/results.json").stat().st_mtime_ns
    out = {command: _run(command, dest, env) for command in workflow}

    # train and evaluate again, and nothing of the results grid
    assert _ran(out[workflow[0]]) == {"train", "evaluate"}
    assert (dest / "cache/results/results.json").stat().st_mtime_ns == grid
    assert _stdout(["git", "rev-parse", "HEAD"], dest, env).strip() == head  # DVCLive committed nothing itself

    shown = out["dvc exp show --only-changed --drop cache/"]  # (a metric equal in both rows is not shown)
    assert "Experiment" in shown and "train.epochs" in shown
    assert _width(shown) <= TERMINAL and "…" not in shown, shown
    metrics = _run(["dvc", "metrics", "show"], dest, env)
    assert _width(metrics) <= TERMINAL, metrics
    header = metrics.split()[:5]  # (DVC leaves out a column whose value is null)
    assert header[:3] == ["Path", "baseline_name_bg.avg_mAP", "baseline_priors.avg_mAP"], metrics
    assert "grizal.avg_mAP" in header, metrics
    summary = json.loads((dest / "metrics/evaluate.json").read_text())
    full = json.loads((dest / "cache/evaluate/metrics.json").read_text())
    for method in ("grizal", "baseline_name_bg", "baseline_priors"):
        kept = ("avg_mAP", "avg_tIoU") if method == "grizal" else ("avg_mAP",)  # a baseline: its avg mAP only
        assert summary[method] == {short: full[method][f"average_{short[4:]}"] for short in kept}
        assert 0.0 <= summary[method]["avg_mAP"] <= 1.0 and set(full[method]["mAP"]) == {"0.3", "0.4", "0.5", "0.6",
                                                                                          "0.7"}
    assert _width(out["dvc metrics diff"]) <= TERMINAL
    last = json.loads(_run(["dvc", "metrics", "show", "--json", "metrics/train/metrics.json"], dest, env))
    (workspace,) = last.values()
    assert workspace["data"]["metrics/train/metrics.json"]["data"]["step"] == 40

    # the plots: epoch on the x axis, titled, and the PNG the train stage drew
    page = (dest / "dvc_plots/index.html").read_text()
    assert "Training loss per epoch" in page and "Learning rate at the end of each epoch" in page
    assert '"title": "epoch"' in page and '"title": "step"' not in page
    assert "training.png" in page and (dest / "metrics/train/plots/training.png").stat().st_size > 1000

    # the table: the commit's row and the experiment's, with numbers
    lines = out["python -m pipeline.exp_table"].splitlines()
    assert lines[0] == ("| experiment | baseline | changed | GRIZAL avg mAP | GRIZAL avg tIoU | CLIP, class name + "
                        "background avg mAP | CLIP, priors prototype avg mAP | state |")
    rows = [line for line in lines[2:] if line.startswith("| ")]
    experiment = [row for row in rows if "train.epochs=40" in row]
    assert len(rows) == 2 and len(experiment) == 1, lines
    cells = [cell.strip() for cell in experiment[0].strip("|").split("|")]
    expected = [value for method in ("grizal", "baseline_name_bg", "baseline_priors")
                for value in summary[method].values()]
    assert cells[3:7] == ["-" if v is None else f"{100 * v:.1f}" for v in expected] and cells[-1] == "success"
    assert sum(re.fullmatch(r"\d+\.\d", cell) is not None for cell in cells[3:7]) >= 2  # numbers, not all "-"


def test_dvc_records_the_experiment_next_to_the_committed_baseline(project):
    dest, env = project
    if not _stdout(["dvc", "exp", "list", "--name-only"], dest, env).strip():  # run alone: make the experiment
        _run("dvc exp run -S train.epochs=40 evaluate", dest, env)
    shown = _metrics_of(json.loads(_stdout(["dvc", "exp", "show", "--json"], dest, env)))
    steps = []
    for row in shown:
        if row["rev"] == "workspace":
            continue
        entry = row["metrics"].get("metrics/evaluate.json")
        assert entry and "data" in entry and not entry.get("error"), row
        assert set(row["metrics"]) == {"metrics/evaluate.json"}
        train_log = _stdout(["git", "show", f"{row['rev']}:metrics/train/metrics.json"], dest, env)
        steps.append(json.loads(train_log)["step"])
    assert sorted(steps) == [1, 40], shown  # the baseline's one epoch next to the experiment's forty

    diff = json.loads(_stdout(["dvc", "metrics", "diff", "--all", "--json"], dest, env))
    assert set(diff) == {"metrics/evaluate.json"}
    assert "old" in diff["metrics/evaluate.json"]["grizal.avg_mAP"]  # evaluate's at HEAD and now
    diff = json.loads(_stdout(["dvc", "metrics", "diff", "--all", "--json", "--targets", "metrics/train/metrics.json"],
                              dest, env))
    assert diff["metrics/train/metrics.json"]["step"] == {"old": 1, "new": 40, "diff": 39}
    assert "loss.total" in diff["metrics/train/metrics.json"]

    plots = json.loads(_stdout(["dvc", "plots", "diff", "--json"], dest, env))
    shown_plots = json.loads(_stdout(["dvc", "plots", "show", "--json"], dest, env))
    for output in (plots, shown_plots):
        names = json.dumps(output)
        assert "metrics/train/plots/metrics/loss/total.tsv" in names and "lr.tsv" in names
        assert "errors" not in output or not output["errors"], output.get("errors")
    _run(["dvc", "plots", "show"], dest, env)
    page = (dest / "dvc_plots/index.html").read_text()
    assert "total_tsv" in page and "Training loss per epoch" in page and "training.png" in page
