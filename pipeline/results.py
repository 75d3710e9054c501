"""Stage `results`: GRIZAL, the training-free baseline and the ablations on unseen classes, over several splits.

Features are split-independent, so every (split, variant) pair reuses the cached stores: only the light layers
are trained again. Writes ``results.md`` (the README's results table), ``results.json`` and, per run,
``<split>/<variant>/model.pt`` and ``metrics.json``. A closed-set GRIZAL run comes first: it shows that the
data set is learnable at all before open-set numbers are read. With ``results.workers`` > 1 the runs go to that
many processes, each with an equal share of torch's threads (these small models use a second thread poorly: on
2 cores, two one-thread workers get through about 1.2-1.3x more runs than one two-thread process).
"""

from __future__ import annotations

import copy
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
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


def grid_jobs(values: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    """(protocol, split id, variant) for every run of the grid, in the table's order."""
    cfg = section(values, "results")
    unknown = sorted(set(cfg.get("variants", [])) - set(VARIANTS))
    if unknown:
        known = ", ".join(VARIANTS)
        raise UserError("params.yaml", f"results.variants: unknown variant '{unknown[0]}' (known: {known})")
    if values["prepare"].get("protocol", "closed") == "closed":  # e.g. Charades-STA: no open-set splits
        return [("closed", None, v) for v in cfg["variants"]]
    jobs: list[tuple[str, int | None, str]] = [("closed", None, "GRIZAL")] if cfg.get("closed_set", True) else []
    return jobs + [("open", int(s), v) for s in cfg["splits"] for v in cfg["variants"]]


def run_one(values: dict[str, Any], index, features: Path, out: Path, job: tuple[str, int | None, str],
            threads: int | None = None) -> dict[str, Any]:
    """Train and evaluate one (protocol, split, variant) run; writes its model.pt and metrics.json."""
    if threads:
        torch.set_num_threads(threads)
    protocol, split_id, variant = job
    tious = [float(t) for t in section(values, "evaluate")["tious"]]
    prepare_cfg = {**values["prepare"], "protocol": protocol}
    if split_id is not None:
        prepare_cfg["split_id"] = split_id
    split = build_split(index, prepare_cfg).to_json()
    run_dir = out / (f"split_{split_id}" if split_id is not None else "closed") / _slug(variant)
    model_cfg = {**copy.deepcopy(values["model"]), **VARIANTS[variant]}
    started = time.time()
    model_path = train(index, split, features, model_cfg, values.get("loss", {}),
                       TrainConfig.from_dict(section(values, "train")), run_dir, progress=False,
                       log=lambda _msg: None)
    outcome = evaluate_model(index, split, features, model_path, values["localization"], tious, n_plots=0)
    atomic_write_json(run_dir / "metrics.json", outcome["metrics"])
    return {"protocol": protocol, "split": split_id, "variant": variant, "seconds": round(time.time() - started, 1),
            "grizal": outcome["metrics"]["grizal"], "baseline": outcome["metrics"]["baseline"]}


def run_grid(values: dict[str, Any], index, features: Path, out: Path, log=print) -> dict[str, Any]:
    jobs = grid_jobs(values)
    tious = [f"{float(t):g}" for t in section(values, "evaluate")["tious"]]
    workers = section(values, "results").get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UserError("params.yaml", f"results.workers must be an integer >= 1, got {workers!r}")
    TrainConfig.from_dict(section(values, "train"))  # a bad train section fails before any run starts

    def report(run: dict[str, Any]) -> None:
        log(f"{run['protocol']} split={run['split']} {run['variant']}: average mAP "
            f"{run['grizal']['average_mAP']:.3f} (baseline {run['baseline']['average_mAP']:.3f}) in {run['seconds']} s")

    runs: list[dict[str, Any]] = []
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            runs.append(run_one(values, index, features, out, job))
            report(runs[-1])
        return {"tious": tious, "runs": runs}
    workers = min(workers, len(jobs))
    threads = max(1, torch.get_num_threads() // workers)
    # spawn, not fork: a forked child of a process whose thread pools are running can deadlock
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, values, index, features, out, job, threads) for job in jobs]
        try:
            for future in futures:
                runs.append(future.result())
                report(runs[-1])
        except BaseException:
            pool.shutdown(cancel_futures=True)  # runs not started yet would only delay the error
            raise
    return {"tious": tious, "runs": runs}


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
