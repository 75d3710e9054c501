"""Command-line start-up: `--help` of every CLI loads none of the heavy libraries, and `grizal --version`.

How fast `--help` answers is measured by `python -m benchmarks.bench_cli`, not here: these tests only check
what gets imported, which does not depend on the machine's load.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import grizal.encoders
import pipeline.apps.cli

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "open_clip", "cv2", "transformers", "diffusers")
STAGES = ("demo_world", "pretrain", "prepare", "generate", "extract", "train", "evaluate", "results", "score",
          "exp_table")
GRIZAL = "from pipeline.apps.cli import main; sys.argv[0] = 'grizal'; main()"


def module(name: str) -> str:
    return f"runpy.run_module({name!r}, run_name='__main__')"


# label -> (sys.argv[1:], what runs); every stage, one extract subcommand, and the `grizal` console script.
COMMANDS = {
    **{f"pipeline.{stage} --help": (["--help"], module(f"pipeline.{stage}")) for stage in STAGES},
    "pipeline.extract import --help": (["import", "--help"], module("pipeline.extract")),
    "grizal --help": (["--help"], GRIZAL),
    "grizal localize --help": (["localize", "--help"], GRIZAL),
    "grizal --version": (["--version"], GRIZAL),
    "python -m pipeline.apps.cli localize --help": (["localize", "--help"], module("pipeline.apps.cli")),
}

# Commands known to still load a heavy library, with why; strict, so a fixed one fails here until it is removed.
STILL_HEAVY: dict[str, str] = {}


def loaded_by(argv: list[str], code: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run `code` as a fresh process with `argv`; returns the process and the heavy modules it had loaded."""
    probe = (f"import atexit, json, runpy, sys\n"
             f"atexit.register(lambda: print('LOADED', json.dumps([m for m in {HEAVY!r} if m in sys.modules]), "
             f"file=sys.stderr))\n"
             f"sys.argv[1:] = {argv!r}\n{code}\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    line = [x for x in done.stderr.splitlines() if x.startswith("LOADED ")]
    assert line, done.stderr[-2000:]
    return done, json.loads(line[-1].removeprefix("LOADED "))


@pytest.mark.parametrize("label", [
    pytest.param(label, marks=pytest.mark.xfail(strict=True, reason=STILL_HEAVY[label])) if label in STILL_HEAVY
    else label for label in COMMANDS])
def test_help_loads_no_heavy_library(label):
    argv, code = COMMANDS[label]
    done, heavy = loaded_by(argv, code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage" in done.stdout or label.endswith("--version"), done.stdout[-2000:]
    assert heavy == [], f"{label} loaded {heavy}"


def pyproject_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_grizal_version_prints_the_pyproject_version():
    done = subprocess.run([sys.executable, "-c", f"import sys; {GRIZAL}", "--version"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"grizal {pyproject_version()}\n"


def test_version_of_an_uninstalled_checkout_comes_from_pyproject(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert pipeline.apps.cli.package_version() == pyproject_version()


def test_encoders_package_names_load_lazily():
    assert set(grizal.encoders.__all__) == set(grizal.encoders._MODULE_OF)
    assert grizal.encoders.PRIOR_ARRAYS[0] == "joint"
    with pytest.raises(AttributeError, match="no_such_encoder"):
        grizal.encoders.no_such_encoder  # noqa: B018
