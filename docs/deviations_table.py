"""Write docs/deviations.md from docs/deviations.yaml and the resolved params (`python docs/deviations_table.py`;
`--check` exits 1 when the page is stale). A row's "ours" is generated from params.yaml (the demo) and every paper
setting composed from conf/ (pipeline.composition.PAPER_SETTINGS), so the table cannot disagree with what the
project runs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "deviations.yaml"
PAGE = ROOT / "docs" / "deviations.md"
DATASET_NAMES = {"thumos14": "THUMOS14", "activitynet": "ActivityNet", "charades": "Charades-STA"}

HEADER = """# Deviations from the paper

Every place where the model or the shipped settings differ from the paper, or where the paper gives no value and we
had to choose one. "demo" is `params.yaml`; "paper configs" is every paper setting composed from `conf/`
(`python -m pipeline.config dataset=X [split=50-50]`). "Not given" means we found no value for it in the paper's
text; where the paper is explicit, the paper configs follow it unless the row says why not.

This page is generated: `python docs/deviations_table.py` writes it from `docs/deviations.yaml` and the resolved
params, and `tests/test_docs_deviations.py` fails when it is stale or when a row's claim about the code (the rows
without a params key) no longer holds. How the settings came to be what they are is in `CHANGELOG.md`.

| what | paper | ours | why |
| --- | --- | --- | --- |
"""


def lookup(params: dict[str, Any], key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{key}: not in the resolved params")
        value = value[part]
    return value


def show(value: Any) -> str:
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def resolved() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the demo's params, {config name: its resolved params})."""
    from pipeline.common import load_params
    from pipeline.composition import PAPER_SETTINGS, compose_params

    configs = {name: compose_params(overrides, ROOT / "conf") for name, overrides in PAPER_SETTINGS.items()}
    return load_params(ROOT / "params.yaml"), configs


def paper_cell(key: str, configs: dict[str, dict[str, Any]]) -> str:
    """One value when every paper config agrees, else each value with the data sets that use it."""
    groups: dict[str, list[str]] = {}
    for params in configs.values():
        name = DATASET_NAMES.get(params["prepare"]["dataset"], params["prepare"]["dataset"])
        names = groups.setdefault(show(lookup(params, key)), [])
        if name not in names:
            names.append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{value} ({', '.join(names)})" for value, names in groups.items())


def ours(row: dict[str, Any], demo: dict[str, Any], configs: dict[str, dict[str, Any]]) -> str:
    if "keys" not in row:
        return row["ours"]
    parts = []
    for key in row["keys"]:
        demo_value, paper_value = show(lookup(demo, key)), paper_cell(key, configs)
        values = (f"{demo_value} demo and paper configs" if demo_value == paper_value
                  else f"demo {demo_value}; paper configs {paper_value}")
        parts.append(f"`{key}`: {values}")
    text = "<br>".join(parts)
    return f"{text}<br>{row['note']}" if row.get("note") else text


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    rows = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    demo, configs = resolved()
    lines = [f"| {cell(row['what'])} | {cell(row['paper'])} | {cell(ours(row, demo, configs))} | "
             f"{cell(row.get('why', ''))} |" for row in rows]
    return HEADER + "\n".join(lines) + "\n"


def failed_checks() -> list[str]:
    """Each row's checks on the code that no longer hold, one line each."""
    failures = []
    for row in yaml.safe_load(SOURCE.read_text(encoding="utf-8")):
        for check in row.get("checks", []):
            if "file" in check:
                text = (ROOT / check["file"]).read_text(encoding="utf-8")
                if "contains" in check and check["contains"] not in text:
                    failures.append(f"{row['what']}: {check['file']} no longer contains {check['contains']!r}")
                if "lacks" in check and check["lacks"] in text:
                    failures.append(f"{row['what']}: {check['file']} now mentions {check['lacks']!r}")
            else:
                namespace = vars(importlib.import_module(check["module"]))
                value = eval(check["expr"], dict(namespace))  # noqa: S307 - the project's own docs source
                if value != check["equals"]:
                    failures.append(f"{row['what']}: {check['module']}: {check['expr']} is {value!r}, "
                                    f"the page says {check['equals']!r}")
    return failures


def main(argv: list[str]) -> int:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    text = render()
    if "--check" in argv:
        stale = PAGE.read_text(encoding="utf-8") != text
        problems = failed_checks() + (["docs/deviations.md is stale: run python docs/deviations_table.py"]
                                      if stale else [])
        print("\n".join(problems) or "docs/deviations.md is up to date")
        return 1 if problems else 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
