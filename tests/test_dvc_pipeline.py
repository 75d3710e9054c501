"""`dvc repro` on a small demo world: every stage runs, a second repro runs nothing, and a changed param
reruns only its stage and what depends on it; then an experiment compares with the committed baseline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.conf_defaults import edit_defaults
from support.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _stdout(args, cwd, env) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project (tracked and new files) with params shrunk to a seconds-long demo world."""
    dest = tmp_path_factory.mktemp("project")
    copy_project(dest)
    (dest / "dvc.lock").unlink(missing_ok=True)

    def shrink(params):
        params["demo"].update(videos_per_class_train=1, videos_per_class_test=1, min_duration=8.0, max_duration=10.0)
        params["extract"]["frames"]["sample_fps"] = 2.0
        params["extract"]["T"] = 16
        params["model"].update(width=32, heads=2, vle_layers=1, ofe_layers=1)
        params["train"].update(epochs=1, batch_size=64)
        params["results"].update(splits=[0], variants=["GRIZAL"], closed_set=False)
        params["generate"]["image_size"] = 64
        params["pretrain"].update(steps=3, batch_size=16, n_stills=128, eval_stills=8)

    edit_defaults(dest, shrink)  # where `dvc exp run` composes params.yaml from
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "OMP_NUM_THREADS": "2"}
    _run(["git", "init", "-q"], dest, env)
    return dest, env


def test_repro_then_nothing_then_only_what_a_param_touches(project):
    dest, env = project
    first = _run(["dvc", "repro"], dest, env)
    assert _ran(first) == {"demo_world", "pretrain", "prepare", "generate", "extract_rgb", "extract_flow",
                           "extract_priors", "train", "evaluate", "results"}
    assert (dest / "metrics/evaluate.json").is_file() and (dest / "cache/results/results.md").is_file()
    assert "up to date" in _run(["dvc", "status"], dest, env).lower()

    assert _ran(_run(["dvc", "repro"], dest, env)) == set()

    edit_defaults(dest, lambda params: params["evaluate"].update(n_plots=1))
    assert _ran(_run(["dvc", "repro"], dest, env)) == {"evaluate"}

    edit_defaults(dest, lambda params: params["extract"]["flow"].update(wheel_max_magnitude=6.0))
    assert _ran(_run(["dvc", "repro"], dest, env)) == {"extract_flow", "train", "evaluate", "results"}


METRIC_FILES = ("metrics/train/metrics.json", "metrics/evaluate.json")  # git-tracked; only evaluate's a DVC metric


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


def test_an_experiment_compares_with_the_committed_baseline(project):
    dest, env = project
    _run(["dvc", "repro"], dest, env)  # nothing to do after the test above; everything when run alone
    for name in METRIC_FILES:
        assert (dest / name).is_file(), name
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=dest, env=env)
        assert ignored.returncode == 1, f"{name} is git-ignored"
    assert not (dest / "metrics/train/dvc.yaml").exists()  # DVCLive writes no dvc.yaml of its own
    baseline = json.loads((dest / "metrics/train/metrics.json").read_text())
    assert baseline["step"] == 1 and "total" in baseline["loss"] and "lr" in baseline
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "baseline"], dest, env)
    head = _stdout(["git", "rev-parse", "HEAD"], dest, env).strip()

    _run(["dvc", "exp", "run", "-S", "train.epochs=2"], dest, env)
    assert _stdout(["git", "rev-parse", "HEAD"], dest, env).strip() == head  # DVCLive committed nothing itself
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
    assert sorted(steps) == [1, 2], shown  # the baseline's one epoch next to the experiment's two

    diff = json.loads(_stdout(["dvc", "metrics", "diff", "--all", "--json"], dest, env))
    assert set(diff) == {"metrics/evaluate.json"}
    assert "old" in diff["metrics/evaluate.json"]["grizal.avg_mAP"]  # evaluate's load at HEAD and now
    diff = json.loads(_stdout(["dvc", "metrics", "diff", "--all", "--json", "--targets", "metrics/train/metrics.json"],
                              dest, env))
    assert diff["metrics/train/metrics.json"]["step"] == {"old": 1, "new": 2, "diff": 1}
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
