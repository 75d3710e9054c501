"""A copy of the project's files as git sees them (tracked and new, not ignored), for tests that run DVC; the
environment those tests run commands in; and a copy of a project a session fixture has already prepared."""

import os
import shutil
import sys
from pathlib import Path

from benchmarks.workspace import copy_project

__all__ = ["copy_prepared", "copy_project", "install_venv", "project_env"]


def project_env(**extra: str) -> dict[str, str]:
    """This interpreter's tools first on PATH, offline, a git identity for commits in the copy."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t", "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", **extra}


def install_venv(dest: Path) -> None:
    """The README's `.venv` in the copy, standing for this test run's own environment: `.venv/bin/grizal` runs the
    copy's entry point with this interpreter, and the Makefile's install stamp is newer than pyproject.toml and
    requirements.lock, so `make setup`/`make repro` find it installed and never reinstall."""
    bin_dir = dest / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "grizal").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pipeline.apps.cli "$@"\n')
    (bin_dir / "grizal").chmod(0o755)
    (dest / ".venv" / ".installed").touch()


def copy_prepared(source: Path, dest: Path) -> Path:
    """A copy of a prepared project (git repo, DVC cache and lock, stores), DVC's temporary files left out."""

    def skip_dvc_tmp(folder: str, names: list[str]) -> list[str]:
        return ["tmp"] if Path(folder) == source / ".dvc" else []

    shutil.copytree(source, dest, symlinks=True, ignore=skip_dvc_tmp, dirs_exist_ok=True)
    return dest
