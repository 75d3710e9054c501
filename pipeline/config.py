"""Compose params.yaml from the config groups under conf/ with Hydra, as `dvc exp run` does (docs/config-groups.md).

    python -m pipeline.config                                  # the demo defaults -> params.yaml
    python -m pipeline.config dataset=thumos14 split=50-50     # a paper setting -> params.yaml, for `dvc repro`
    python -m pipeline.config dataset=charades --print         # print it instead

The overrides are Hydra's (the same `-S` takes under `dvc exp run`); the result is checked as every stage checks
its params before anything is written.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any

import typer

from pipeline.common import UserError, atomic_write_text, exit_on_user_error
from pipeline.params_schema import SCHEMAS, validate_params

CONF = Path("conf")
PRIMARY = "config"  # conf/config.yaml: the demo defaults and the defaults list (.dvc/config's hydra.config_name)
# Editors find the JSON Schema through this line (params.schema.json, `python -m pipeline.json_schema`).
MODELINE = "# yaml-language-server: $schema=params.schema.json\n"

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def compose_params(overrides: list[str], conf: Path = CONF) -> dict[str, Any]:
    """The params Hydra composes from `conf` with `overrides`; Hydra's errors become one UserError line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not (conf / f"{PRIMARY}.yaml").is_file():
        raise UserError(conf / f"{PRIMARY}.yaml", "not found (the config groups' defaults; docs/config-groups.md)")
    try:
        with initialize_config_dir(str(conf.resolve()), version_base=None):
            cfg = compose(config_name=PRIMARY, overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise UserError(conf, _one_line(err, list(overrides), conf)) from None


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


def _one_line(err: Exception, overrides: list[str], conf: Path) -> str:
    """Hydra's multi-line message, cut to what the user typed wrong and what would be right."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, OverrideParseException):
        return f"not a Hydra override ({first}); write key=value or group=option"
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        options = ", ".join(sorted(err.options or [])) or "none"
        hint = _closest(option, err.options or [])
        return f"{group}={option}: no such option in conf/{group}/ ({options}){hint}"
    number = re.match(r"Config group override must be a string or a list\. Got int", first)
    if number:
        typed = next((o for o in overrides if "=" in o and o.split("=", 1)[1].replace("_", "").isdigit()), "")
        key, _, value = typed.partition("=")
        options = _group_options(conf, key.lstrip("+~"))
        return (f"{typed}: Hydra reads {value} as the number {value.replace('_', '')}, not an option name; "
                f"conf/{key}/ has {', '.join(options) or 'no options'}")
    missing = re.match(r"Could not override '([^']+)'\. No match in the defaults list", first)
    if missing:
        group = missing.group(1)
        return (f"{group}: nothing in this composition chooses a {group} (see the defaults of the chosen "
                "conf/dataset/ file; Charades-STA has no split setting)")
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown:
        key = unknown.group(1)
        return f"{key}: unknown key{_closest_key(key, conf)}; list the keys with: python -m pipeline.config --print"
    return first


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _group_options(conf: Path, group: str) -> list[str]:
    folder = conf / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if group and folder.is_dir() else []


def _closest_key(key: str, conf: Path) -> str:
    """The nearest existing key (or config group) to a mistyped dotted key, from the default composition."""
    node: Any = compose_params([], conf)
    parts = key.split(".")
    for i, part in enumerate(parts):
        choices = list(node) if isinstance(node, dict) else []
        if i == 0:
            choices += [p.name for p in conf.iterdir() if p.is_dir()]
        if part not in choices:
            match = difflib.get_close_matches(part, choices, n=1)
            return f" (did you mean '{'.'.join([*parts[:i], match[0], *parts[i + 1:]])}'?)" if match else ""
        node = node.get(part) if isinstance(node, dict) else None
    return ""


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
