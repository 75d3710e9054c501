"""A typer app invoked from a given folder, as a user's shell would run it there (relative paths resolve there)."""

import contextlib
from pathlib import Path

import typer
from click.testing import Result
from typer.testing import CliRunner


def invoke_in(cwd: Path, app: typer.Typer, args: list[str]) -> Result:
    with contextlib.chdir(cwd):
        return CliRunner().invoke(app, args)
