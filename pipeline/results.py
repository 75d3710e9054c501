"""Stage `results`: GRIZAL, the training-free baseline and the ablations on unseen classes, over several splits.

Features are split-independent, so every (split, variant) pair reuses the cached stores: only the light layers
are trained again. Writes ``results.md`` (the README's results table), ``results.json`` and, per run,
``<split>/<variant>/model.pt`` and ``metrics.json``. A closed-set GRIZAL run comes first: it shows that the
data set is learnable at all before open-set numbers are read.
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Any

import typer

from pipeline.common import UserError, atomic_write_json, atomic_write_text, exit_on_user_error, section
from pipeline.predict import evaluate_model
from pipeline.prepare import build_split
from pipeline.train import TrainConfig, load_stage_inputs, train

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])

# The paper's ablations (Tables 1 and 4): each is a change of the model section.
VARIANTS: dict[str, dict[str, Any]] = {
    "GRIZAL": {},
    "w/o images": {"use_images": False},
    "w/o texts": {"use_texts": False},
    "w/o flow": {"use_flow": False},
    "w/o Fourier": {"use_fourier": False},
}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def run_grid(values: dict[str, Any], index, features: Path, out: Path, log=print) -> dict[str, Any]:
    cfg = section(values, "results")
    unknown = sorted(set(cfg.get("variants", [])) - set(VARIANTS))
    if unknown:
        known = ", ".join(VARIANTS)
        raise UserError("params.yaml", f"results.variants: unknown variant '{unknown[0]}' (known: {known})")
    tious = [float(t) for t in section(values, "evaluate")["tious"]]
    train_cfg = TrainConfig.from_dict(section(values, "train"))
    runs: list[dict[str, Any]] = []
    if values["prepare"].get("protocol", "closed") == "closed":  # e.g. Charades-STA: no open-set splits
        jobs = [("closed", None, v) for v in cfg["variants"]]
    else:
        jobs = [("closed", None, "GRIZAL")] if cfg.get("closed_set", True) else []
        jobs += [("open", int(s), v) for s in cfg["splits"] for v in cfg["variants"]]
    for protocol, split_id, variant in jobs:
        prepare_cfg = {**values["prepare"], "protocol": protocol}
        if split_id is not None:
            prepare_cfg["split_id"] = split_id
        split = build_split(index, prepare_cfg).to_json()
        run_dir = out / (f"split_{split_id}" if split_id is not None else "closed") / _slug(variant)
        model_cfg = {**copy.deepcopy(values["model"]), **VARIANTS[variant]}
        started = time.time()
        model_path = train(index, split, features, model_cfg, values.get("loss", {}), train_cfg, run_dir,
                           progress=False, log=lambda _msg: None)
        outcome = evaluate_model(index, split, features, model_path, values["localization"], tious, n_plots=0)
        atomic_write_json(run_dir / "metrics.json", outcome["metrics"])
        run = {"protocol": protocol, "split": split_id, "variant": variant, "seconds": round(time.time() - started, 1),
               "grizal": outcome["metrics"]["grizal"], "baseline": outcome["metrics"]["baseline"]}
        runs.append(run)
        log(f"{protocol} split={split_id} {variant}: average mAP {run['grizal']['average_mAP']:.3f} "
            f"(baseline {run['baseline']['average_mAP']:.3f}) in {run['seconds']} s")
    return {"tious": [f"{t:g}" for t in tious], "runs": runs}


def _stat(values: list[float]) -> str:
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.1f}"
    return f"{statistics.mean(pct):.1f} ± {statistics.stdev(pct):.1f}"


def results_table(grid: dict[str, Any]) -> str:
    """Markdown: one row per method, mAP (%) at each tIoU, average mAP and average tIoU, mean ± std over splits."""
    tious = grid["tious"]
    header = ["setting", "method", *(f"mAP@{t}" for t in tious), "avg mAP", "avg tIoU", "splits"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in grid["runs"]:
        setting = "closed-set" if run["protocol"] == "closed" else "open-set (unseen)"
        groups.setdefault((setting, run["variant"]), []).append(run["grizal"])
        if run["variant"] == "GRIZAL":
            groups.setdefault((setting, "training-free CLIP baseline"), []).append(run["baseline"])
    order = ["GRIZAL", "training-free CLIP baseline", *[v for v in VARIANTS if v != "GRIZAL"]]
    for (setting, method), metrics in sorted(groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        cells = [setting, method]
        cells += [_stat([m["mAP"][t] for m in metrics]) for t in tious]
        cells += [_stat([m["average_mAP"] for m in metrics]), _stat([m["average_tIoU"] for m in metrics]),
                  str(len(metrics))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@app.command()
@exit_on_user_error
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params.yaml with a `results` section."),
    prepare_dir: Path = typer.Option(Path("cache/prepare"), "--prepare", help="Output of the prepare stage."),
    features: Path = typer.Option(Path("cache/features"), help="Folder holding the feature stores."),
    out: Path = typer.Option(Path("cache/results"), help="Output folder."),
) -> None:
    """Train and evaluate every configured variant on every configured split; write the results table."""
    values, index, _ = load_stage_inputs(params, prepare_dir)
    grid = run_grid(values, index, features, out)
    table = results_table(grid)
    atomic_write_json(out / "results.json", grid)
    atomic_write_text(out / "results.md", table)
    print(table)


if __name__ == "__main__":
    app()
