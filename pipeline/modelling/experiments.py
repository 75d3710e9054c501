"""The results table of DVC experiments: `dvc exp show --json` -> one row per experiment (and its baseline).

Each row names the experiment, the params it changed from its baseline commit (`-S` overrides), and the metrics
the evaluate stage wrote to `metrics/evaluate.json` (mAP at the reported tIoUs, average mAP, average tIoU).
Experiments still queued or running, and ones that failed, have no metrics yet: they are listed with their state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.modelling.scoring import reported_keys

METRICS_FILE = "metrics/evaluate.json"
PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class ExpRow:
    name: str
    rev: str
    baseline: str  # the commit's name (branch) or short rev; the row of the commit itself has changed == {}
    changed: dict[str, Any]
    metrics: dict[str, Any] | None  # the evaluate report, None when the experiment has none (yet)
    state: str  # success, queued, running, failed, ...


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def _file_data(data: Mapping[str, Any] | None, section: str, file: str) -> dict[str, Any] | None:
    entry = ((data or {}).get(section) or {}).get(file)
    return entry.get("data") if isinstance(entry, Mapping) else None


def _row(node: Mapping[str, Any], baseline: str, base_params: dict[str, Any], state: str,
         name: str | None = None) -> ExpRow:
    data = node.get("data") or {}
    params = _flat(_file_data(data, "params", PARAMS_FILE) or {})
    changed = {k: v for k, v in params.items() if base_params.get(k, object()) != v}
    changed |= {k: None for k in base_params if k not in params}
    rev = str(node.get("rev") or data.get("rev") or "")
    return ExpRow(name=str(node.get("name") or name or rev[:7]), rev=rev, baseline=baseline, changed=changed,
                  metrics=_file_data(data, "metrics", METRICS_FILE), state=state)


def experiment_rows(shown: Any) -> list[ExpRow]:
    """Rows of `dvc exp show --json` (DVC 3): each commit, then its experiments; the workspace is left out."""
    if not isinstance(shown, list):
        raise ValueError("expected the list `dvc exp show --json` prints")
    rows: list[ExpRow] = []
    for commit in shown:
        if not isinstance(commit, Mapping) or commit.get("rev") == "workspace":
            continue
        baseline = str(commit.get("name") or str(commit.get("rev", ""))[:7])
        base_params = _flat(_file_data(commit.get("data"), "params", PARAMS_FILE) or {})
        rows.append(_row(commit, baseline, base_params, "commit"))
        for experiment in commit.get("experiments") or []:
            rows.extend(_experiment_rows(experiment, baseline, base_params))
    return rows


def _experiment_rows(experiment: Mapping[str, Any], baseline: str, base_params: dict[str, Any]
                     ) -> Iterator[ExpRow]:
    executor = experiment.get("executor") or {}
    state = str(executor.get("state") or "success")
    for node in experiment.get("revs") or []:
        yield _row(node, baseline, base_params, state, experiment.get("name"))


def _pct(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{100 * value:.1f}"


def _value(value: Any) -> str:
    return "(removed)" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def experiments_table(rows: list[ExpRow], *, with_commits: bool = True) -> str:
    """A markdown table in the results table's units (percent): experiment, baseline, changed params, mAP at the
    reported tIoUs, avg mAP, avg tIoU, state."""
    shown = [r for r in rows if with_commits or r.state != "commit"]
    keys = list(dict.fromkeys(k for r in shown if r.metrics and "mAP" in r.metrics for k in reported_keys(r.metrics)))
    header = ["experiment", "baseline", "changed", *(f"mAP@{k}" for k in keys), "avg mAP", "avg tIoU", "state"]
    aligns = ["---"] * 3 + ["---:"] * (len(keys) + 2) + ["---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    for row in shown:
        m = row.metrics or {}
        changed = ", ".join(f"{k}={_value(v)}" for k, v in sorted(row.changed.items())) or "-"
        maps = [_pct((m.get("mAP") or {}).get(k)) for k in keys]
        cells = [row.name, row.baseline, changed.replace("|", "\\|"), *maps, _pct(m.get("average_mAP")),
                 _pct(m.get("average_tIoU")), row.state]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
