"""The README's experiments workflow (`dvc exp run -S ... evaluate`, `dvc exp show --only-changed`, `dvc metrics
diff`, `dvc plots diff`, `python -m pipeline.exp_table`), command for command as the README prints it, on a copy
of the project shrunk to a seconds-long demo world with its baseline committed."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.conf_defaults import edit_defaults
from support.doc_workflows import commands
from support.project_copy import copy_project

pytestmark = pytest.mark.slow
TERMINAL = 120  # columns DVC's own tables must fit in


def _run(command: str | list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, shell=isinstance(command, str), executable="/bin/bash" if isinstance(
        command, str) else None, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def _width(output: str) -> int:
    return max((len(line.rstrip()) for line in output.splitlines()), default=0)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dest = tmp_path_factory.mktemp("experiments")
    copy_project(dest)
    (dest / "dvc.lock").unlink(missing_ok=True)

    def shrink(params):
        params["demo"].update(videos_per_class_train=1, videos_per_class_test=1, min_duration=6.0, max_duration=8.0,
                              size=112)
        params["pretrain"].update(steps=2, batch_size=8, n_stills=32, eval_stills=8)
        params["generate"]["image_size"] = 32
        params["extract"]["frames"]["sample_fps"] = 1.0
        params["extract"]["T"] = 8
        params["model"].update(width=16, heads=2, vle_layers=1, ofe_layers=1, ft_layers=1)
        params["train"].update(epochs=1, batch_size=64)
        params["evaluate"]["n_plots"] = 1

    edit_defaults(dest, shrink)  # where `dvc exp run` composes params.yaml from
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the copy's own code runs
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
                "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "400", "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    _run(["git", "init", "-q"], dest, env)
    _run(["dvc", "repro", "evaluate"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "baseline"], dest, env)
    return dest, env


def test_the_readme_experiments_workflow(project):
    dest, env = project
    workflow = commands("experiments")
    assert workflow == ["dvc exp run -S train.epochs=40 evaluate", "dvc exp show --only-changed", "dvc metrics diff",
                        "dvc plots diff", "python -m pipeline.exp_table"]
    out = {command: _run(command, dest, env) for command in workflow}

    # train and evaluate again, and nothing of the results grid
    assert _ran(out[workflow[0]]) == {"train", "evaluate"}
    assert not (dest / "cache/results").exists()

    shown = out["dvc exp show --only-changed"]  # (a metric equal in both rows is not shown)
    assert "Experiment" in shown and "train.epochs" in shown
    assert _width(shown) <= TERMINAL and "…" not in shown, shown
    metrics = _run(["dvc", "metrics", "show"], dest, env)
    assert _width(metrics) <= TERMINAL, metrics
    header = metrics.split()[:5]  # (DVC leaves out a column whose value is null)
    assert header[:2] == ["Path", "baseline.avg_mAP"] and "grizal.avg_mAP" in header, metrics
    summary = json.loads((dest / "metrics/evaluate.json").read_text())
    full = json.loads((dest / "cache/evaluate/metrics.json").read_text())
    for method in ("grizal", "baseline"):
        assert summary[method] == {"avg_mAP": full[method]["average_mAP"], "avg_tIoU": full[method]["average_tIoU"]}
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
    assert lines[0] == ("| experiment | baseline | changed | GRIZAL avg mAP | GRIZAL avg tIoU | baseline avg mAP "
                        "| baseline avg tIoU | state |")
    rows = [line for line in lines[2:] if line.startswith("| ")]
    experiment = [row for row in rows if "train.epochs=40" in row]
    assert len(rows) == 2 and len(experiment) == 1, lines
    cells = [cell.strip() for cell in experiment[0].strip("|").split("|")]
    expected = [value for method in ("grizal", "baseline") for value in summary[method].values()]
    assert cells[3:7] == ["-" if v is None else f"{100 * v:.1f}" for v in expected] and cells[-1] == "success"
    assert sum(re.fullmatch(r"\d+\.\d", cell) is not None for cell in cells[3:7]) >= 2  # numbers, not all "-"
