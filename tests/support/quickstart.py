"""The README's quick start on a copy of the project shrunk to a seconds-long demo world, run once per session
through the README's own lines (`make setup`, `grizal check`, `make repro`); the tests of DVC's behaviour and of
the experiments workflow each take a copy of the finished project."""

import subprocess
from pathlib import Path

from support.conf_defaults import edit_defaults
from support.custom_world import run_workflow
from support.doc_workflows import commands
from support.project_copy import copy_project, install_venv, project_env


def shrink_demo(params: dict) -> None:
    params["demo"].update(videos_per_class_train=1, videos_per_class_test=1, min_duration=8.0, max_duration=10.0)
    params["extract"]["frames"]["sample_fps"] = 2.0
    params["extract"]["T"] = 16
    params["model"].update(width=32, heads=2, vle_layers=1, ofe_layers=1)
    params["train"].update(epochs=1, batch_size=64)
    params["results"].update(splits=[0], variants=["GRIZAL"], closed_set=False)
    params["generate"]["image_size"] = 64
    params["pretrain"].update(steps=3, batch_size=16, n_stills=128, eval_stills=8)


def quickstart(dest: Path) -> tuple[Path, dict[str, str], dict[str, subprocess.CompletedProcess]]:
    """(project, environment, each quick-start line -> its finished process), after the README's quick start."""
    copy_project(dest)
    (dest / "dvc.lock").unlink(missing_ok=True)
    edit_defaults(dest, shrink_demo)  # where `dvc exp run` composes params.yaml from; params.yaml is written too
    install_venv(dest)
    env = project_env()
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)
    lines = commands("quickstart")
    return dest, env, dict(zip(lines, run_workflow(lines, dest, env), strict=True))
