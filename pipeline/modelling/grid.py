"""The results grid: every (protocol, split, variant, seed) run trained and evaluated over the cached feature stores,
each run kept and reused, and the results table.

Features are split-independent, so every (split, variant, seed) run reuses the cached stores: only the light layers
are trained again. GRIZAL (and the closed-set run) is trained with every seed of ``results.seeds``, the other
variants with those of ``results.ablation_seeds`` (by default the first of ``results.seeds``); ``train.seed`` is the
seed when ``results.seeds`` is not given. Each run writes ``<split>/<variant>/seed_<n>/`` with ``model.pt``,
``metrics.json`` and, last, ``run.json``. With ``results.workers`` > 1 the runs go to that many processes, each with
an equal share of torch's threads (these small models use a second thread poorly: on 2 cores, two one-thread workers
get through about 1.2-1.3x more runs than one two-thread process).

Every finished run is kept: ``run.json`` holds the run's key, a digest of everything that decides its numbers (its
protocol, split, variant and seed, the resolved model, loss, train, localization and tIoU settings, the split that the
prepare settings give it, the index, the feature stores' settings and items, and the source of the code that trains
and scores it). A rerun reuses each run whose key is unchanged and redoes the others; a run killed before its
``run.json`` was written is redone.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import math
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.common import UserError, atomic_write_json, die_with_parent, section
from pipeline.data.build import build_split
from pipeline.data.splits import Split
from pipeline.modelling.baselines import BASELINES
from pipeline.modelling.variants import BUILT_IN, REFERENCE, Variant, resolve_variants, slug_of, variant_of

# torch, training and prediction load when a run starts (in run_grid/run_one), so `--help` answers at once.

ROOT = Path(__file__).resolve().parents[2]
RUN_RECORD = "run.json"
# Bump when run_one changes what a run computes: this file's own source is not part of the run key (editing the
# table must not retrain the grid), the modules below and everything they import from the project are.
RUN_FORMAT = 2
RUN_CODE = ("pipeline.data.build", "pipeline.modelling.fit", "pipeline.modelling.inference")
Job = tuple[str, int | None, str, int]  # (protocol, split id or None, variant, train seed)

# The variants (the paper's ablations built in, others declared in results.variants): pipeline.modelling.variants.
VARIANTS = BUILT_IN


def grid_seeds(values: dict[str, Any], where: str | os.PathLike = "params.yaml") -> tuple[list[int], list[int]]:
    """The train seeds of GRIZAL's runs (``results.seeds``, else ``[train.seed]``) and of the other variants'
    (``results.ablation_seeds``, else the first of GRIZAL's)."""
    cfg = section(values, "results", where)
    seeds = cfg.get("seeds")
    if seeds is None:
        seeds = [(values.get("train") or {}).get("seed", 0)]
    ablation = cfg.get("ablation_seeds")
    ablation = seeds[:1] if ablation is None else ablation
    for key, given in (("seeds", seeds), ("ablation_seeds", ablation)):
        if (not isinstance(given, list) or not given or len(set(given)) != len(given)
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in given)):
            raise UserError(where, f"results.{key}: expected a non-empty list of distinct integers >= 0, got {given!r}")
    return list(seeds), list(ablation)


def grid_jobs(values: dict[str, Any], where: str | os.PathLike = "params.yaml") -> list[Job]:
    """(protocol, split id, variant, seed) for every run of the grid, in the table's order."""
    cfg = section(values, "results", where)
    resolve_variants(cfg, where)  # an unknown name or a bad override fails here
    seeds, ablation_seeds = grid_seeds(values, where)

    def seeded(protocol: str, split_id: int | None, variant: str) -> list[Job]:
        return [(protocol, split_id, variant, seed) for seed in (seeds if variant == REFERENCE else ablation_seeds)]

    if values["prepare"].get("protocol", "closed") == "closed":  # e.g. Charades-STA: no open-set splits
        return [job for v in cfg["variants"] for job in seeded("closed", None, v)]
    jobs = seeded("closed", None, REFERENCE) if cfg.get("closed_set", True) else []
    return jobs + [job for s in cfg["splits"] for v in cfg["variants"] for job in seeded("open", int(s), v)]


def run_dir(out: Path, job: Job) -> Path:
    _protocol, split_id, variant, seed = job
    return out / (f"split_{split_id}" if split_id is not None else "closed") / slug_of(variant) / f"seed_{seed}"


def seeded_values(values: dict[str, Any], job: Job) -> dict[str, Any]:
    """``values`` with the job's train seed (a copy)."""
    out = copy.deepcopy(values)
    out["train"] = {**(out.get("train") or {}), "seed": job[3]}
    return out


def _split(values: dict[str, Any], index, job: Job, where: str | os.PathLike = "params.yaml") -> Split:
    protocol, split_id, _variant, _seed = job
    prepare_cfg = {**values["prepare"], "protocol": protocol}
    if split_id is not None:
        prepare_cfg["split_id"] = split_id
    return build_split(index, prepare_cfg, where, "results.splits" if split_id is not None else "prepare.split_id")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _module_file(name: str) -> Path | None:
    if name.split(".")[0] not in ("pipeline", "grizal"):
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def code_digest(modules: tuple[str, ...] = RUN_CODE) -> str:
    """sha256 over the source of ``modules`` and of every project module they import, at any depth (imports
    inside functions included): a code change that DVC reruns the stage for also retrains the runs."""
    found: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in found or path is None:
            continue
        found[name] = path
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # parent packages
        for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                todo += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    digest = hashlib.sha256()
    for name in sorted(found):
        digest.update(name.encode() + b"\0" + found[name].read_bytes() + b"\0")
    return digest.hexdigest()


def _item_attrs(folder: Path) -> dict[str, Any]:
    """The attributes of every group in a store folder (a video's source fingerprint, a class's sources)."""
    items = {}
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            items[entry.name] = json.loads((entry / "zarr.json").read_bytes()).get("attributes", {})
        except (OSError, ValueError):
            items[entry.name] = None
    return items


def input_identity(index, features: Path) -> dict[str, Any]:
    """What the runs read besides params: the index content, and per store its settings and the attributes of
    every video or class in it (an edited video or a remade class changes those)."""
    from pipeline.features.inputs import store_paths
    from pipeline.features.store import CLASSES, VIDEOS, read_store_attrs

    identity: dict[str, Any] = {"index": _digest(index.to_json())}
    for kind, path in store_paths(features).items():
        if not path.exists():
            identity[kind] = None  # a run that needs it fails when it loads it
            continue
        items = _item_attrs(path / (CLASSES if kind == "priors" else VIDEOS))
        identity[kind] = _digest([read_store_attrs(path), items])
    return identity


def resolved_settings(values: dict[str, Any], where: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The sections every run reads, with their defaults filled in (so a default written out changes nothing)."""
    from dataclasses import fields

    from grizal.localization import localization_config
    from grizal.losses import loss_config
    from grizal.model import ConfigError
    from grizal.model.config import ModelConfig
    from pipeline.modelling.fit import TrainConfig
    from pipeline.modelling.inference import baseline_localization

    try:
        loss, localization = loss_config(values.get("loss", {})), localization_config(values["localization"])
        baselines = baseline_localization(values["localization"], _baseline_overrides(values))
    except ConfigError as err:
        raise UserError(where, str(err)) from None
    # The model section is checked where each run builds its model (in its worker, when there are workers).
    model = {f.name: f.default for f in fields(ModelConfig)} | copy.deepcopy(values["model"])
    return {"model": model, "loss": loss, "localization": localization,
            "train": TrainConfig.from_dict(section(values, "train", where), where).to_dict(),
            "tious": _scored_thresholds(values), "baseline_localization": baselines}


def _baseline_overrides(values: dict[str, Any]) -> dict[str, Any] | None:
    """``evaluate.baseline_localization``: the training-free baselines' own localization keys."""
    return (values.get("evaluate") or {}).get("baseline_localization")


def _thresholds(values: dict[str, Any]):
    """`evaluate.tious` (averaged into avg mAP) and `evaluate.report_tious` (the table's columns)."""
    from pipeline.modelling.scoring import thresholds_from_params

    return thresholds_from_params(section(values, "evaluate"))


def _scored_thresholds(values: dict[str, Any]) -> dict[str, list[float]]:
    """What a run's metrics depend on: the averaged thresholds and every threshold scored. Columns that are
    already averaged change only the table, so they retrain nothing."""
    thresholds = _thresholds(values)
    return {"averaged": list(thresholds.averaged), "scored": sorted({*thresholds.averaged, *thresholds.reported})}


def _check_model(model: dict[str, Any], variant: str, where: str | os.PathLike) -> None:
    from grizal.model import ConfigError
    from grizal.model.config import ModelConfig

    try:
        ModelConfig.from_dict(model)
    except ConfigError as err:
        raise UserError(where, f"results.variants.{variant}: {err}") from None


def run_key(settings: dict[str, Any], inputs: dict[str, Any], code: str, job: Job, split: Split) -> str:
    """The digest of everything that decides one run's numbers. The prepare section counts through the split it
    gives the run (classes and videos) and the index: `prepare.split_id`, which only the train stage reads,
    changes no run. ``settings`` are the variant's (its overrides merged in), ``inputs`` those of its features."""
    return _digest({"format": RUN_FORMAT, "job": list(job), "split": split.to_json(), "inputs": inputs, "code": code,
                    **settings})


def finished_run(out: Path, job: Job, key: str) -> dict[str, Any] | None:
    """The stored record of the run, when it finished with this key."""
    try:
        record = json.loads((run_dir(out, job) / RUN_RECORD).read_bytes())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def run_one(values: dict[str, Any], index, features: Path, out: Path, job: Job, key: str,
            threads: int | None = None, where: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Train and evaluate one (protocol, split, variant, seed) run; writes its model.pt, metrics.json and, last,
    run.json (the record with ``key`` that marks the run finished)."""
    import torch

    from pipeline.modelling.fit import TrainConfig, train
    from pipeline.modelling.inference import evaluate_model

    if threads:
        torch.set_num_threads(threads)
    protocol, split_id, variant, _seed = job
    chosen = variant_of(section(values, "results", where), variant, where)
    values, features = seeded_values(chosen.settings(values), job), chosen.features_dir(features)
    folder = run_dir(out, job)
    (folder / RUN_RECORD).unlink(missing_ok=True)  # from now on the folder holds an unfinished run
    tious = _thresholds(values)
    split = _split(values, index, job, where)
    model_cfg = copy.deepcopy(values["model"])
    train_cfg = TrainConfig.from_dict(section(values, "train", where), where)
    started = time.time()
    model_path = train(index, split, features, model_cfg, values.get("loss", {}), train_cfg, folder,
                       progress=False, log=lambda _msg: None, where=where)
    outcome = evaluate_model(index, split, features, model_path, values["localization"], tious, n_plots=0,
                             where=where, baseline_loc=_baseline_overrides(values))
    atomic_write_json(folder / "metrics.json", outcome["metrics"])
    record = {"key": key, "protocol": protocol, "split": split_id, "seed": train_cfg.seed, "variant": variant,
              "seconds": round(time.time() - started, 1),
              "grizal": outcome["metrics"]["grizal"], **{name: outcome["metrics"][name] for name in BASELINES}}
    atomic_write_json(folder / RUN_RECORD, record)  # last: a folder without it is redone
    return record


def results_lock(out: Path):
    """The results folder's writer lock (the stores' lock, `.<folder>.lock` beside it): one writer at a time."""
    from pipeline.features.store import StoreBusy, WriterLock

    try:
        return WriterLock(out)
    except StoreBusy:
        raise UserError(out, "another run is writing this results folder; wait for it to finish, then run "
                             "again") from None


def _with_seed(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    return {**settings, "train": {**settings["train"], "seed": seed}}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_grid(values: dict[str, Any], index, features: Path, out: Path, log=print,
             where: str | os.PathLike = "params.yaml", plans: dict[str, Any] | None = None,
             plans_path: str | os.PathLike = "actors.json") -> dict[str, Any]:
    """Every run of the grid, in the table's order: finished runs with an unchanged key are reused, the others
    are trained and evaluated (in ``results.workers`` processes), each stored as soon as it finishes. With the
    demo world's actor ``plans``, the reference detectors (``pipeline.modelling.reference``) are scored on every
    (protocol, split) too."""
    if getattr(index, "dataset", None) == "charades":  # its metrics are per query (R@n), not this table's mAP
        log("results: Charades-STA is scored per query; the table shows R@1/R@5 at IoU 0.5/0.7 and the top-1 mIoU, "
            "not mAP")
    jobs = grid_jobs(values, where)
    lock = results_lock(out)  # held until run_grid returns; the OS drops it when the process ends
    from pipeline.modelling.scoring import threshold_key

    tious = [threshold_key(t) for t in _thresholds(values).reported]  # the table's columns
    workers = section(values, "results", where).get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UserError(where, f"results.workers must be an integer >= 1, got {workers!r}")
    variants = resolve_variants(section(values, "results", where), where)
    variants.setdefault(REFERENCE, Variant(REFERENCE))
    # A bad train/loss/localization section, or a variant's bad override, fails before any run starts.
    settings = {name: resolved_settings(variant.settings(values), where) for name, variant in variants.items()}
    for name, resolved in settings.items():
        _check_model(resolved["model"], name, where)
    inputs = {folder: input_identity(index, folder) for folder in {v.features_dir(features) for v in variants.values()}}
    splits = {job: _split(values, index, job, where) for job in jobs}
    unscorable = [job for job in jobs if not _has_ground_truth(index, splits[job])]
    for protocol, split_id in dict.fromkeys((job[0], job[1]) for job in unscorable):
        log(f"{protocol} split={split_id}: skipped, its test videos hold no annotated instance of its evaluated "
            "classes (nothing to score; train and evaluate still predict on unlabelled videos)")
    jobs = [job for job in jobs if job not in unscorable]
    code = code_digest()
    keys = {job: run_key(_with_seed(settings[job[2]], job[3]), inputs[variants[job[2]].features_dir(features)], code,
                         job, splits[job]) for job in jobs}

    def report(run: dict[str, Any], how: str) -> None:
        grizal = run["grizal"]
        baselines = ", ".join(f"{label} {_fmt(run.get(name, {}).get('average_mAP'))}"
                              for name, label in BASELINES.items())
        figures = (f"R@1,IoU=0.5 {_fmt(grizal.get('recall', {}).get('R@1,IoU=0.5'))}, mIoU {_fmt(grizal.get('mIoU'))}"
                   if "mIoU" in grizal else f"average mAP {_fmt(grizal.get('average_mAP'))} ({baselines})")
        log(f"{run['protocol']} split={run['split']} {run['variant']} seed={run['seed']}: {figures}, {how}")

    runs: dict[Job, dict[str, Any]] = {}
    for job in jobs:
        record = finished_run(out, job, keys[job])
        if record is not None:
            runs[job] = record
            report(record, "reused")
    todo = [job for job in jobs if job not in runs]
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            runs[job] = run_one(values, index, features, out, job, keys[job], where=where)
            report(runs[job], f"in {runs[job]['seconds']} s")
    else:
        import torch

        workers = min(workers, len(todo))
        threads = max(1, torch.get_num_threads() // workers)
        # spawn, not fork: a forked child of a process whose thread pools are running can deadlock. Each worker
        # writes its run's record when the run finishes, so a kill loses only the runs in flight.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {job: pool.submit(run_one, values, index, features, out, job, keys[job], threads, where)
                       for job in todo}
            try:
                for job, future in futures.items():
                    runs[job] = future.result()
                    report(runs[job], f"in {runs[job]['seconds']} s")
            except BaseException:
                pool.shutdown(cancel_futures=True)  # runs not started yet would only delay the error
                raise
    lock.release()
    references = [] if plans is None else reference_rows(values, index, features, plans, jobs, splits, plans_path,
                                                         where)
    return {"tious": tious, "runs": [runs[job] for job in jobs], "references": references,
            "skipped": [{"protocol": job[0], "split": job[1], "variant": job[2], "seed": job[3]} for job in unscorable]}


def reference_rows(values: dict[str, Any], index, features: Path, plans: dict[str, Any], jobs: list[Job],
                   splits: dict[Job, Split], plans_path: str | os.PathLike, where: str | os.PathLike
                   ) -> list[dict[str, Any]]:
    """The reference detectors' metrics on every (protocol, split) of the grid, at the runs' T and localization."""
    from grizal.localization import localization_config
    from pipeline.features.inputs import FeatureSet
    from pipeline.modelling.fit import TrainConfig
    from pipeline.modelling.reference import reference_metrics
    from pipeline.modelling.scoring import ground_truth_of

    T = TrainConfig.from_dict(section(values, "train", where), where).T or FeatureSet.open(features).T
    loc_cfg = localization_config(values["localization"])
    first_job = {}  # (protocol, split id) -> its first job: every job of a split tests the same videos and classes
    for job in jobs:
        first_job.setdefault(job[:2], job)
    rows = []
    for job in first_job.values():
        split = splits[job]
        ids, classes = list(split.test_videos), list(split.unseen)
        gt = ground_truth_of(index, ids, classes)
        scored = [c for c in classes if c in set(gt.label)]
        durations = {vid: index.videos[vid].duration for vid in ids}
        metrics = reference_metrics(plans, ids, classes, scored, gt, durations, T, loc_cfg, _thresholds(values),
                                    plans_path)
        rows += [{"protocol": job[0], "split": job[1], "detector": name, "metrics": m} for name, m in metrics.items()]
    return rows


def _has_ground_truth(index, split: Split) -> bool:
    unseen = set(split.unseen)
    return any(s.label in unseen for vid in split.test_videos for s in index.videos[vid].segments)


def percent_stat(values: list[float | None]) -> str:
    """Percent, mean ± sample std over the runs; ``n/a`` when a run has no such figure (average tIoU without
    predictions, a baseline undefined on the features); ``-`` when there is no run."""
    if any(v is None for v in values):
        return "n/a"
    pct = [100 * v for v in values]
    if not pct:
        return "-"
    if len(pct) == 1:
        return f"{pct[0]:.1f}"
    return f"{statistics.mean(pct):.1f} ± {statistics.stdev(pct):.1f}"


def paired_difference(differences: list[float]) -> str:
    """Mean of paired differences (points) with its two-sided 95% t interval; the mean alone for one pair."""
    from scipy import stats

    if not differences:
        return "n/a"
    mean = statistics.mean(differences)
    if len(differences) == 1:
        return f"{mean:+.1f} (1 pair)"
    half = stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"


REFERENCE_PREFIX = "reference: "


def _rows(grid: dict[str, Any]) -> dict[tuple[str, str], list[tuple[tuple, dict[str, Any]]]]:
    """(setting, method) -> [(pairing key, metrics)]: runs pair by (protocol, split, seed), the training-free
    baselines and the reference detectors (no seed) by (protocol, split)."""
    groups: dict[tuple[str, str], list[tuple[tuple, dict[str, Any]]]] = {}
    seen_baseline: set[tuple] = set()

    def setting(protocol: str) -> str:
        return "closed-set" if protocol == "closed" else "open-set (unseen)"

    for run in grid["runs"]:
        where = (run["protocol"], run["split"])
        groups.setdefault((setting(run["protocol"]), run["variant"]), []).append(((*where, run["seed"]), run["grizal"]))
        if run["variant"] == REFERENCE and where not in seen_baseline:
            seen_baseline.add(where)
            for name, label in BASELINES.items():
                if name in run:  # (a record of an older grizal has its one baseline under another key)
                    groups.setdefault((setting(run["protocol"]), label), []).append((where, run[name]))
    for row in grid.get("references", []):
        groups.setdefault((setting(row["protocol"]), REFERENCE_PREFIX + row["detector"]), []).append(
            ((row["protocol"], row["split"]), row["metrics"]))
    return groups


def _differences(rows: list[tuple[tuple, dict[str, Any]]], grizal: list[tuple[tuple, dict[str, Any]]]) -> list[float]:
    """avg mAP minus GRIZAL's, in points, per pairing key: the same seed's GRIZAL run, or for a seedless row the
    mean of GRIZAL's seeds on that split. Rows without a figure (n/a) pair with nothing."""
    by_key = {key: m["average_mAP"] for key, m in grizal}
    by_split: dict[tuple, list[float]] = {}
    for key, m in grizal:
        by_split.setdefault(key[:2], []).append(m["average_mAP"])
    out = []
    for key, m in rows:
        mine = m.get("average_mAP")
        theirs = by_key.get(key) if len(key) == 3 else None
        if theirs is None and by_split.get(key[:2]) and all(v is not None for v in by_split[key[:2]]):
            theirs = statistics.mean(by_split[key[:2]])
        if mine is not None and theirs is not None:
            out.append(100 * (mine - theirs))
    return out


def results_table(grid: dict[str, Any]) -> str:
    """Markdown: one row per method, mAP (%) at each tIoU, average mAP and average tIoU, as mean ± sample standard
    deviation over the row's runs (every split and seed); `runs` counts them; `Δ avg mAP` is the mean paired
    difference to GRIZAL in points with its 95% t interval (pairs: the same split and seed; the training-free
    baselines and the reference detectors, which have no seed, pair with GRIZAL's mean over seeds on each split).
    Each training-free baseline (``modelling.baselines``) counts once per split; so do the demo world's reference
    detectors (``pipeline.modelling.reference``: ground-truth detectors of one cue each)."""
    tious = grid["tious"]
    if any("mIoU" in run["grizal"] for run in grid["runs"]):  # Charades-STA: scored per query
        return grounding_results_table(grid["runs"])
    if not grid["runs"]:
        return ("No run was scored: the test videos of every configured split hold no annotated instance of its "
                "evaluated classes. The results grid needs labelled test videos; `train` and `evaluate` still "
                "predict on unlabelled ones (cache/evaluate/predictions.json).\n")
    header = ["setting", "method", *(f"mAP@{t}" for t in tious), "avg mAP", "avg tIoU", "runs",
              "Δ avg mAP vs GRIZAL [95% CI]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
    groups = _rows(grid)
    order = [REFERENCE, *BASELINES.values(),
             *dict.fromkeys(run["variant"] for run in grid["runs"] if run["variant"] != REFERENCE),
             *(REFERENCE_PREFIX + d for d in dict.fromkeys(r["detector"] for r in grid.get("references", [])))]
    for (setting, method), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        metrics = [m for _key, m in rows]
        cells = [setting, method]
        cells += [percent_stat([m["mAP"][t] for m in metrics]) for t in tious]
        cells += [percent_stat([m["average_mAP"] for m in metrics]), percent_stat([m["average_tIoU"] for m in metrics]),
                  str(len(metrics))]
        grizal = groups.get((setting, REFERENCE), [])
        cells.append("—" if method == REFERENCE else paired_difference(_differences(rows, grizal)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def grounding_results_table(runs: list[dict[str, Any]]) -> str:
    """Markdown for Charades-STA (scored per query): one row per variant, R@1 and R@5 at IoU 0.5 and 0.7 and the
    top-1 moment's mean IoU (%), mean ± sample standard deviation over its runs. The training-free baselines are
    undefined per query (one class in their softmax), so they have no row."""
    keys = [f"R@{n},IoU={m}" for n in (1, 5) for m in (0.5, 0.7)]
    header = ["setting", "method", *keys, "mIoU", "runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["variant"], []).append(run["grizal"])
    for variant, metrics in groups.items():
        cells = ["per query", variant, *(percent_stat([m["recall"].get(k) for m in metrics]) for k in keys),
                 percent_stat([m["mIoU"] for m in metrics]), str(len(metrics))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
