"""Choose a setting on training videos only: compare alternative params on validation splits of each open split.

    .venv/bin/python -m benchmarks.choose_setting --option model.image_tokens=patches --option model.image_tokens=pooled
    .venv/bin/python -m benchmarks.choose_setting --option "" --option "model.ft_layers=2" --seeds 0,1 \
        --workers 14 --device cuda --closed      # a machine with many cores (and a GPU): runs in parallel

For every open split in ``results.splits`` and every seed in ``--seeds``, a validation split holds out a seeded
quarter of the split's *seen* classes (``pipeline.data.splits.validation_split``): the model trains on training
videos free of them and is scored on the training videos that show them. The test videos and the unseen classes
are never read, so the winner can become a default without tuning on the test set. Prints average mAP (%) of each
option, mean ± std over splits and seeds, and each run's figure, for GRIZAL and for both training-free baselines
(``pipeline.modelling.baselines``): they are localized with ``localization`` updated by
``evaluate.baseline_localization``, so an option of either is chosen for them too.

``--closed-validation`` adds, per option and seed, a closed-set validation run: a seeded quarter of the training
videos is held out and scored on every class (``pipeline.data.splits.closed_validation_split``), so a setting is
chosen for the closed-set protocol without its test videos too (``--splits none`` runs these alone). ``--closed``
adds, per option, one closed-set run (all classes, scored on the test videos) as a *diagnostic*: it says whether
an option can fit the data set at all, and it reads the test videos, so it must never decide a default.
``--workers`` runs that many trainings at once in separate processes (torch threads shared among them);
``--device`` is the train and evaluate device (``auto``, ``cpu``, ``cuda``).
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import yaml

from benchmarks.workspace import set_dotted
from pipeline.common import load_params
from pipeline.data.build import build_split
from pipeline.data.index import Index
from pipeline.data.splits import closed_validation_split, validation_split
from pipeline.modelling.baselines import BASELINES
from pipeline.modelling.fit import TrainConfig, train
from pipeline.modelling.grid import percent_stat
from pipeline.modelling.inference import evaluate_model
from pipeline.modelling.scoring import thresholds_from_params

VALIDATION, CLOSED_VALIDATION, CLOSED = "validation", "closed-set validation", "closed-set test (diagnostic)"
METHODS = ("grizal", *BASELINES)


def with_option(values: dict, option: str) -> dict:
    """``values`` with the option's assignments (``key=value``, space-separated, values in yaml) applied; the empty
    option is ``values`` as they are (today's setting)."""
    out = copy.deepcopy(values)
    for assignment in option.split():
        key, _, raw = assignment.partition("=")
        set_dotted(out, key, yaml.safe_load(raw))
    return out


def run(values: dict, index: Index, split_id: int | None, seed: int, features: Path, work: Path,
        device: str = "auto", kind: str = VALIDATION) -> dict:
    """Train and score one run: on the validation split of open split ``split_id``; or (``split_id`` None) on the
    closed set, either its validation split (``kind`` CLOSED_VALIDATION: a seeded quarter of the training videos
    held out) or its test videos (CLOSED)."""
    if split_id is None:
        split = build_split(index, {**values["prepare"], "protocol": "closed"})
        if kind == CLOSED_VALIDATION:
            split = closed_validation_split(split, seed=seed)
    else:
        split = validation_split(build_split(index, {**values["prepare"], "protocol": "open", "split_id": split_id}),
                                 index, seed=seed)
    train_cfg = TrainConfig.from_dict({**values["train"], "seed": seed, "device": device})
    model_path = train(index, split, features, copy.deepcopy(values["model"]), values.get("loss", {}), train_cfg,
                       work, progress=False, log=lambda _msg: None)
    outcome = evaluate_model(index, split, features, model_path, values["localization"],
                             thresholds_from_params(values["evaluate"]), n_plots=0, device=device,
                             baseline_loc=values["evaluate"].get("baseline_localization"))
    figures = {name: (outcome["metrics"].get(name) or {}).get("average_mAP") for name in METHODS}
    return {**figures, "held_out": split.unseen if split_id is not None else []}


def _run_job(job: dict) -> dict:
    """One job in a worker process: ``job`` holds plain values only (it crosses a process boundary)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(job["threads"])
    started = time.time()
    try:
        out = run(job["values"], Index.load(Path(job["index"])), job["split_id"], job["seed"],
                  Path(job["features"]), Path(job["work"]), job["device"], job["kind"])
    finally:
        torch.set_num_threads(before)  # run in the caller's process (one worker), it leaves the caller's count
    return {**out, "seconds": time.time() - started}


def jobs_of(values: dict, options: list[str], split_ids: list[int], seeds: list[int], closed: bool,
            work: Path, common: dict, closed_validation: bool = False) -> list[dict]:
    """Every run of the comparison: each option on each (split, seed) validation split, with ``closed_validation``
    on the closed set's validation split of each seed, and with ``closed`` one closed-set test run per option (the
    first seed)."""
    jobs = []
    for number, option in enumerate(options):
        chosen = with_option(values, option)
        where = [(VALIDATION, s, seed) for s in split_ids for seed in seeds]
        where += [(CLOSED_VALIDATION, None, seed) for seed in seeds] if closed_validation else []
        where += [(CLOSED, None, seeds[0])] if closed else []
        for kind, split_id, seed in where:
            name = {VALIDATION: split_id, CLOSED_VALIDATION: "closed_validation", CLOSED: "closed"}[kind]
            folder = work / f"option{number}" / f"{name}_{seed}"
            jobs.append({**common, "option": option, "kind": kind, "values": chosen, "split_id": split_id,
                         "seed": seed, "work": str(folder)})
    return jobs


def run_jobs(jobs: list[dict], workers: int, report=print) -> list[dict]:
    """Run the jobs (in ``workers`` processes when more than one), reporting each as it ends; results in job order."""
    def line(job: dict, out: dict) -> str:
        where = {CLOSED: "closed-set", CLOSED_VALIDATION: "closed-set validation"}.get(job["kind"],
                                                                                     f"split {job['split_id']}")
        held = f"; held out {', '.join(out['held_out'])}" if out["held_out"] else ""
        baselines = "; ".join(f"{label} {percent_stat([out[name]])}" for name, label in BASELINES.items())
        return (f"{job['option'] or '(as configured)'} {where} seed {job['seed']}: avg mAP {100 * out['grizal']:.1f} "
                f"({baselines}{held}) in {out['seconds']:.0f} s")

    if workers <= 1:
        results = []
        for job in jobs:
            results.append(_run_job(job))
            report(line(job, results[-1]))
        return results
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_job, job) for job in jobs]
        results = []
        for job, future in zip(jobs, futures, strict=True):
            results.append(future.result())
            report(line(job, results[-1]))
        return results


def table(jobs: list[dict], results: list[dict], options: list[str]) -> str:
    """The comparison as markdown: per option, the validation figures (what chooses) of GRIZAL and of each
    training-free baseline, when run GRIZAL's closed-set validation figure (also what chooses) and its closed-set
    diagnostic."""
    closed = any(job["kind"] == CLOSED for job in jobs)
    closed_validation = any(job["kind"] == CLOSED_VALIDATION for job in jobs)
    head = "| option | GRIZAL validation avg mAP (%) | " + " | ".join(BASELINES.values()) + " | runs |"
    head += " closed-set validation avg mAP (%) |" if closed_validation else ""
    head += " closed-set test avg mAP (%, diagnostic) |" if closed else ""
    lines = [head, "| --- |" + " ---: |" * (len(BASELINES) + 2 + closed + closed_validation)]
    for option in options:
        mine = [(job, out) for job, out in zip(jobs, results, strict=True) if job["option"] == option]
        val = [out for job, out in mine if job["kind"] == VALIDATION]
        row = f"| {option or '(as configured)'} | " + " | ".join(percent_stat([out[m] for out in val]) for m in METHODS)
        row += f" | {len(val)} |"
        if closed_validation:
            row += f" {percent_stat([out['grizal'] for job, out in mine if job['kind'] == CLOSED_VALIDATION])} |"
        if closed:
            row += f" {percent_stat([out['grizal'] for job, out in mine if job['kind'] == CLOSED])} |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--option", action="append", required=True,
                        help="key=value ..., yaml values; 2+; an empty option is the setting as configured")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepare", default="cache/prepare", help="the prepare stage's folder (its index.json)")
    parser.add_argument("--features", default="cache/features")
    parser.add_argument("--seeds", default="0", help="comma-separated validation/training seeds")
    parser.add_argument("--splits", default=None,
                        help="comma-separated open splits (default: results.splits; 'none': no open split)")
    parser.add_argument("--closed-validation", action="store_true",
                        help="also a closed-set validation run per seed: a quarter of the training videos held out "
                             "and scored on every class")
    parser.add_argument("--closed", action="store_true",
                        help="also one closed-set run per option, scored on the test videos: a diagnostic only")
    parser.add_argument("--workers", type=int, default=1, help="trainings at once, in separate processes")
    parser.add_argument("--device", default="auto", help="train and evaluate device: auto, cpu, cuda")
    args = parser.parse_args()
    values = load_params(args.params)
    seeds = [int(s) for s in args.seeds.split(",")]
    split_ids = ([] if args.splits == "none" else [int(s) for s in args.splits.split(",")] if args.splits
                 else values["results"]["splits"])
    threads = max(1, (os.cpu_count() or 1) // max(1, args.workers))
    with tempfile.TemporaryDirectory() as tmp:
        common = {"index": str(Path(args.prepare) / "index.json"), "features": args.features, "device": args.device,
                  "threads": threads}
        jobs = jobs_of(values, args.option, split_ids, seeds, args.closed, Path(tmp), common, args.closed_validation)
        results = run_jobs(jobs, args.workers, report=lambda text: print(text, flush=True))
    print()
    print(table(jobs, results, args.option))


if __name__ == "__main__":
    main()
