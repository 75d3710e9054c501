"""Compose params.yaml from the config groups under conf/ with Hydra, as `dvc exp run` does (docs/config-groups.md).

    python -m pipeline.config                                  # the demo defaults -> params.yaml
    python -m pipeline.config dataset=thumos14 split=50-50     # a paper setting -> params.yaml, for `dvc repro`
    python -m pipeline.config dataset=charades --print         # print it instead

The overrides are Hydra's (the same `-S` takes under `dvc exp run`); the result is checked as every stage checks
its params before anything is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pipeline.common import atomic_write_text, exit_on_user_error
from pipeline.composition import CONF, compose_params
from pipeline.params_schema import SCHEMAS, validate_params

# Editors find the JSON Schema through this line (params.schema.json, `python -m pipeline.json_schema`).
MODELINE = "# yaml-language-server: $schema=params.schema.json\n"

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def composed_text(overrides: list[str], conf: Path = CONF) -> str:
    """params.yaml as `dvc exp run` writes it (OmegaConf's YAML), headed by the modeline and how to remake it."""
    from omegaconf import OmegaConf

    params = compose_params(overrides, conf)
    validate_params(params, SCHEMAS, conf)
    command = " ".join(["python -m pipeline.config", *overrides])
    header = (f"{MODELINE}# Composed from {conf.as_posix()}/ by `{command}` (docs/config-groups.md): edit conf/ "
              "or pass overrides,\n# not this file; `dvc exp run` composes it again from conf/ and drops these "
              "comments.\n")
    return header + OmegaConf.to_yaml(OmegaConf.create(params))


@app.command()
@exit_on_user_error
def main(
    overrides: list[str] = typer.Argument(None, help="Hydra overrides: group=option or dotted.key=value."),
    out: Path = typer.Option(Path("params.yaml"), help="Where to write the composed params."),
    print_only: bool = typer.Option(False, "--print", help="Print the composed params instead of writing them."),
    conf: Path = typer.Option(CONF, help="The config directory (.dvc/config's hydra.config_dir)."),
) -> None:
    text = composed_text(list(overrides or []), conf)
    if print_only:
        sys.stdout.write(text)
        return
    atomic_write_text(out, text)
    print(f"wrote {out} (composed from {conf.as_posix()}/{' with ' + ' '.join(overrides) if overrides else ''})",
          file=sys.stderr)


if __name__ == "__main__":
    app()
