"""The results table of DVC experiments (`dvc exp run --queue -S ...`, `dvc queue start -j N`).

    python -m pipeline.exp_table [--out cache/exp_table.md] [--only-experiments]
    python -m pipeline.exp_table --from shown.json      (saved `dvc exp show --json` output)

One row per commit and experiment: its changed params (an experiment on another data set: its conf/ group
choices and what differs from them), avg mAP/avg tIoU of GRIZAL and avg mAP of each training-free baseline from
metrics/evaluate.json.
The rows come from ``pipeline.modelling.experiments``.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import typer

from pipeline.common import UserError, atomic_write_text, exit_on_user_error, read_json

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def dvc_exp_show() -> object:
    """`dvc exp show --json` of the repository here, by the DVC of this interpreter."""
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as err:
        raise UserError("dvc exp show", f"could not run ({err})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError("dvc exp show", f"failed: {last}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise UserError("dvc exp show", "printed no JSON (is this a DVC repository?)") from None


@app.callback(invoke_without_command=True)
@exit_on_user_error
def main(
    source: Path = typer.Option(None, "--from", help="a saved `dvc exp show --json` (default: run it here)"),
    out: Path = typer.Option(None, "--out", help="also write the table to this markdown file"),
    only_experiments: bool = typer.Option(False, "--only-experiments", help="leave out the commits' own rows"),
) -> None:
    """Print the experiments' results table (markdown)."""
    from pipeline.composition import compose_params
    from pipeline.modelling.experiments import experiment_rows, experiments_table

    shown = read_json(source) if source is not None else dvc_exp_show()
    compose = functools.cache(lambda *overrides: compose_params(list(overrides)))
    try:
        rows = experiment_rows(shown, lambda overrides: compose(*overrides))
    except ValueError as err:
        raise UserError(source or "dvc exp show", str(err)) from None
    table = experiments_table(rows, with_commits=not only_experiments)
    if out is not None:
        atomic_write_text(out, table)
    print(table, end="")


if __name__ == "__main__":
    app()
