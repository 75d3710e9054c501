"""Resolve a configs/ overlay into one complete params file, the one `dvc repro` reads.

    python -m pipeline.config configs/thumos14_75_25.yaml --out params.yaml   # switch the project to that setting
    python -m pipeline.config configs/thumos14_75_25.yaml                     # print it

An overlay names the files it builds on with `_base_` and holds only what differs; `pipeline.common.load_params`
resolves the chain (README "The paper's settings").
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from pipeline.common import RESOLVED_HEADER, UserError, atomic_write_text, exit_on_user_error, load_params

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


class _ParamsDumper(yaml.SafeDumper):
    """Block mappings; lists of scalars on one line, as params.yaml writes them."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_ParamsDumper.add_representer(list, _represent_list)


def resolved_text(config: Path, out: Path | None = None) -> str:
    """The resolved params of `config` as YAML, headed by where they came from and how to regenerate them."""
    params = load_params(config)
    regenerate = f"python -m pipeline.config {config}" + (f" --out {out}" if out is not None else "")
    header = (f"{RESOLVED_HEADER}{config} (an overlay; README \"The paper's settings\").\n"
              f"# Edit the overlay rather than this file, then regenerate: {regenerate}\n"
              f"# Overlays build on the demo defaults: `git checkout params.yaml` restores them.\n")
    body = yaml.dump(params, Dumper=_ParamsDumper, sort_keys=False, allow_unicode=True, width=120)
    return header + body


@app.command()
@exit_on_user_error
def main(
    config: Path = typer.Argument(..., help="The overlay to resolve, e.g. configs/thumos14_75_25.yaml."),
    out: Path | None = typer.Option(None, help="Write here (e.g. params.yaml) instead of printing to stdout."),
) -> None:
    if out is not None and out.resolve() == config.resolve():
        raise UserError(out, "is the overlay being resolved; write the result elsewhere (e.g. params.yaml)")
    text = resolved_text(config, out)
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
        print(f"wrote {out} (resolved from {config})", file=sys.stderr)


if __name__ == "__main__":
    app()
