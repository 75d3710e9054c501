"""`dvc repro` on a small demo world: every stage runs, a second repro runs nothing, and a changed param
reruns only its stage and what depends on it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project (tracked and new files) with params shrunk to a seconds-long demo world."""
    dest = tmp_path_factory.mktemp("project")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "dvc.lock").unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["demo"].update(videos_per_class_train=1, videos_per_class_test=1, min_duration=8.0, max_duration=10.0)
    params["extract"]["frames"]["sample_fps"] = 2.0
    params["extract"]["T"] = 16
    params["model"].update(width=32, heads=2, vle_layers=1, ofe_layers=1)
    params["train"].update(epochs=1, batch_size=64)
    params["results"].update(splits=[0], variants=["GRIZAL"], closed_set=False)
    params["generate"]["image_size"] = 64
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "OMP_NUM_THREADS": "2"}
    _run(["git", "init", "-q"], dest, env)
    return dest, env


def test_repro_then_nothing_then_only_what_a_param_touches(project):
    dest, env = project
    first = _run(["dvc", "repro"], dest, env)
    assert _ran(first) == {"demo_world", "prepare", "generate", "extract_rgb", "extract_flow", "extract_priors",
                           "train", "evaluate", "results"}
    assert (dest / "cache/evaluate/metrics.json").is_file() and (dest / "cache/results/results.md").is_file()
    assert "up to date" in _run(["dvc", "status"], dest, env).lower()

    assert _ran(_run(["dvc", "repro"], dest, env)) == set()

    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["evaluate"]["n_plots"] = 1
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _ran(_run(["dvc", "repro"], dest, env)) == {"evaluate"}

    params["extract"]["flow"]["wheel_max_magnitude"] = 6.0
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _ran(_run(["dvc", "repro"], dest, env)) == {"extract_flow", "train", "evaluate", "results"}
