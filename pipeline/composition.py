"""Hydra's composition of params from the config groups under conf/, as `dvc exp run` does it (docs/config-groups.md).

`python -m pipeline.config` writes the result to params.yaml; `pipeline.exp_table` names an experiment's setting by
the groups it chose. Hydra's errors become one line naming the override and what would be right.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.common import UserError

CONF = Path("conf")
PRIMARY = "config"  # conf/config.yaml: the demo defaults and the defaults list (.dvc/config's hydra.config_name)


# The paper's settings as config-group overrides (docs/config-groups.md), by the names of the resolved copies kept in
# tests/data/resolved_configs/ (what the `_base_` overlays resolved to before conf/ replaced them).
PAPER_SETTINGS = {
    "thumos14_75_25": ["dataset=thumos14"],
    "thumos14_50_50": ["dataset=thumos14", "split=50-50"],
    "activitynet_75_25": ["dataset=activitynet"],
    "activitynet_50_50": ["dataset=activitynet", "split=50-50"],
    "charades_sta": ["dataset=charades"],
}


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
        params: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = mark.name if mark is not None else conf
        raise UserError(where, f"not valid YAML ({str(err).splitlines()[0]})") from None
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise UserError(conf, _one_line(err, list(overrides), conf)) from None
    for key in params:
        if (conf / key).is_dir():  # a group file without the header puts its keys under the group's name
            raise UserError(conf / key, f"its values were composed under '{key}', where no stage reads them: start "
                                        "each file there with `# @package _global_` (its keys are params sections)")
    return params


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
        if not typed:
            return first
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


def setting_overrides(dataset: Any, split_setting: Any) -> list[str]:
    """The group choices that compose a data set's setting: `dataset=...` and, where it has one, `split=...`."""
    overrides = [f"dataset={dataset}"]
    if split_setting is not None:
        overrides.append(f"split={str(split_setting).replace('_', '-')}")
    return overrides
