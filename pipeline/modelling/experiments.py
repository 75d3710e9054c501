"""The results table of DVC experiments: `dvc exp show --json` -> one row per experiment (and its baseline).

Each row names the experiment, the params it changed from its baseline commit (`-S` overrides), and the metrics
the evaluate stage wrote to `metrics/evaluate.json`: average mAP and average tIoU of GRIZAL and the average mAP of
each training-free baseline (``scoring.metrics_summary``; files of older versions, which nest the full reports or
hold one flat report, are read too). Experiments still queued or running, and ones that failed, have no metrics yet:
they are listed with their state. An experiment that switched the data set (`-S dataset=thumos14`, conf/) is named
by its group choices and what differs from that composed setting, not by every key the setting changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.common import UserError
from pipeline.composition import setting_overrides
from pipeline.modelling.baselines import BASELINES
from pipeline.modelling.scoring import summary_keys

METRICS_FILE = "metrics/evaluate.json"
PARAMS_FILE = "params.yaml"
REMOVED = "(removed)"  # a key the baseline has and the experiment has not (a null value is shown as null)
# overrides -> the params they compose (pipeline.composition); the setting an experiment's data set switched to
Compose = Callable[[list[str]], Mapping[str, Any]]
SETTING_KEYS = ("prepare.dataset", "prepare.split_setting")


@dataclass(frozen=True)
class ExpRow:
    name: str
    rev: str
    baseline: str  # the commit's name (branch) or short rev; the row of the commit itself has changed == {}
    changed: dict[str, Any]
    metrics: dict[str, Any] | None  # metrics/evaluate.json, None when the experiment has none (yet)
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


def _diff(params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    changed = {k: v for k, v in params.items() if base.get(k, object()) != v}
    return changed | {k: REMOVED for k in base if k not in params}


def _setting_diff(params: dict[str, Any], base: dict[str, Any], compose: Compose | None) -> dict[str, Any] | None:
    """The group choices of a switched data set and what differs from their composition; None if not switched or
    not composable (a data set with no conf/dataset/ file)."""
    if compose is None or all(params.get(k) == base.get(k) for k in SETTING_KEYS):
        return None
    overrides = setting_overrides(params.get("prepare.dataset"), params.get("prepare.split_setting"))
    try:
        setting = _flat(compose(overrides))
    except UserError:
        return None
    choices = dict(o.split("=", 1) for o in overrides)
    for group, key in zip(("dataset", "split"), SETTING_KEYS, strict=True):
        if params.get(key) == base.get(key):
            choices.pop(group, None)  # chosen as in the baseline
    return choices | _diff(params, setting)


def _row(node: Mapping[str, Any], baseline: str, base_params: dict[str, Any], state: str,
         name: str | None = None, compose: Compose | None = None) -> ExpRow:
    data = node.get("data") or {}
    params = _flat(_file_data(data, "params", PARAMS_FILE) or {})
    changed = _setting_diff(params, base_params, compose)
    if changed is None:
        changed = _diff(params, base_params)
    rev = str(node.get("rev") or data.get("rev") or "")
    return ExpRow(name=str(node.get("name") or name or rev[:7]), rev=rev, baseline=baseline, changed=changed,
                  metrics=_file_data(data, "metrics", METRICS_FILE), state=state)


def experiment_rows(shown: Any, compose: Compose | None = None) -> list[ExpRow]:
    """Rows of `dvc exp show --json` (DVC 3): each commit, then its experiments; the workspace is left out.
    With `compose`, an experiment on another data set is described against that data set's composed setting."""
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
            rows.extend(_experiment_rows(experiment, baseline, base_params, compose))
    return rows


def _experiment_rows(experiment: Mapping[str, Any], baseline: str, base_params: dict[str, Any],
                     compose: Compose | None) -> Iterator[ExpRow]:
    executor = experiment.get("executor") or {}
    state = str(executor.get("state") or "success")
    for node in experiment.get("revs") or []:
        yield _row(node, baseline, base_params, state, experiment.get("name"), compose)


METHODS = {"grizal": "GRIZAL", **BASELINES}


def summary_of(metrics: Mapping[str, Any] | None, method: str) -> dict[str, Any]:
    """``{"avg_mAP", "avg_tIoU"}`` of one method (``{"avg_mAP"}`` of a baseline) in any layout
    metrics/evaluate.json has had."""
    metrics = metrics or {}
    if method == "grizal" and "average_mAP" in metrics:  # one flat report: GRIZAL's
        node: Mapping[str, Any] = metrics
    else:
        node = metrics.get(method) if isinstance(metrics.get(method), Mapping) else {}
    return {short: node.get(short, node.get(full)) for short, full in summary_keys(method).items()}


def _pct(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{100 * value:.1f}"


def _value(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def experiments_table(rows: list[ExpRow], *, with_commits: bool = True) -> str:
    """A markdown table in the results table's units (percent): experiment, baseline commit, changed params, avg
    mAP and avg tIoU of GRIZAL, avg mAP of each training-free baseline, state."""
    shown = [r for r in rows if with_commits or r.state != "commit"]
    header = ["experiment", "baseline", "changed"]
    figures = [f"{label} {short.replace('_', ' ')}" for method, label in METHODS.items()
               for short in summary_keys(method)]
    header += figures
    aligns = ["---"] * 3 + ["---:"] * len(figures) + ["---"]
    lines = ["| " + " | ".join([*header, "state"]) + " |", "|" + "|".join(aligns) + "|"]
    for row in shown:
        changed = ", ".join(f"{k}={_value(v)}" for k, v in sorted(row.changed.items())) or "-"
        numbers = [_pct(value) for method in METHODS for value in summary_of(row.metrics, method).values()]
        cells = [row.name, row.baseline, changed.replace("|", "\\|"), *numbers, row.state]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
