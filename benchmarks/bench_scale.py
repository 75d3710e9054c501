"""Time and memory of train (one epoch) and evaluate at the paper's data-set sizes, on synthetic features.

    python -m benchmarks.bench_scale --fractions 0.01,0.02 --datasets thumos14,activitynet,charades
    python -m benchmarks.bench_scale --fractions 0.25,1 --device cuda --report OUT_DIR      # a GPU machine

Per data set (THUMOS14 75/25: 200 + 213 videos, 20 classes, T 256; ActivityNet v1.3 75/25: 10,000 + 4,926
videos, 200 classes, T 100; Charades-STA per query: 5,338 + 1,334 videos, 12,408 + 3,720 queries, T 256; every
feature D 512) and each fraction of its videos (classes stay at the real count; Charades' queries, being its
classes, shrink with its videos): random (T, D) rgb and flow features per video go through the real import path
(``pipeline.features.importers.import_features``, the ``extract import`` command) into real stores, priors
(k 4, 16 text slots + 50 image tokens of width 512) through the priors store's writer, the index and split through
their own writers (``Index``, ``open_set`` / ``closed_set``); then ``modelling.fit.train`` (one epoch) and
``modelling.inference.evaluate_model``, as the train and evaluate stages call them, with the demo's model
(params.yaml) and the paper's (its size's model, train and localization settings laid over it). Each step runs
in its own process, which reports its wall and CPU time and peak resident memory (and peak GPU memory). With two
fractions or more it fits time = fixed + per unit x units per data set, model and step (units: videos imported,
training videos, evaluation forward passes) and prints the extrapolation to the full size, marked as such.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM, K, TEXT_SLOTS, IMAGE_TOKENS, NAME_SLOTS = 512, 4, 16, 50, 8
DATASETS = {
    # train videos, test videos, classes (Charades: train and test queries), T, video seconds, instance seconds
    "thumos14": {"train": 200, "test": 213, "classes": 20, "T": 256, "duration": 200.0, "length": (2.0, 10.0),
                 "instances": 10},
    "activitynet": {"train": 10000, "test": 4926, "classes": 200, "T": 100, "duration": 120.0,
                    "length": (10.0, 60.0), "instances": 2},
    "charades": {"train": 5338, "test": 1334, "queries": (12408, 3720), "T": 256, "duration": 30.0,
                 "length": (3.0, 12.0)},
}
STEPS = ("import", "train", "evaluate")


# ------------------------------------------------------------------------------------------ synthetic data


def sizes(name: str, fraction: float) -> dict[str, int]:
    shape = DATASETS[name]
    out = {"train": max(4, round(shape["train"] * fraction)), "test": max(2, round(shape["test"] * fraction))}
    if name == "charades":
        out["train_queries"] = max(out["train"], round(shape["queries"][0] * fraction))
        out["test_queries"] = max(out["test"], round(shape["queries"][1] * fraction))
    else:
        out["classes"] = shape["classes"]
    return out


def synthesize(name: str, fraction: float, work: Path, seed: int = 0) -> dict[str, int]:
    """Random features as .npy files, the index and split: what the import step starts from."""
    from pipeline.common import atomic_write_json
    from pipeline.data.index import Index, Segment, VideoEntry
    from pipeline.data.splits import closed_set, open_set

    shape, n = DATASETS[name], sizes(name, fraction)
    rng = np.random.default_rng(seed)
    videos: dict[str, VideoEntry] = {}

    def segments(labels: list[str]) -> list[Segment]:
        out = []
        for label in labels:
            length = float(rng.uniform(*shape["length"]))
            start = float(rng.uniform(0, shape["duration"] - length))
            out.append(Segment(round(start, 2), round(start + length, 2), label))
        return out

    if name == "charades":
        for subset in ("train", "test"):
            count, queries = n[subset], n[f"{subset}_queries"]
            owner = np.concatenate([np.arange(count), rng.integers(0, count, queries - count)])
            for v in range(count):
                labels = [f"{subset} query {q}" for q in np.flatnonzero(owner == v)]
                videos[f"{subset}_{v:05d}"] = VideoEntry(None, shape["duration"], 30.0, subset, segments(labels))
        index = Index("charades", videos)
        split = closed_set(index)
    else:
        classes = [f"action {c:03d}" for c in range(n["classes"])]
        seen, unseen = classes[: round(0.75 * len(classes))], classes[round(0.75 * len(classes)):]
        for subset, count, pool in (("train", n["train"], seen), ("test", n["test"], unseen)):
            for v in range(count):
                label = pool[v % len(pool)]  # every class has videos once there are as many videos
                videos[f"{subset}_{v:05d}"] = VideoEntry(None, shape["duration"], 30.0, subset,
                                                         segments([label] * shape["instances"]))
        index = Index(name, videos)
        present = set(index.classes)  # a small fraction may have fewer videos than classes
        split = open_set(index, [c for c in seen if c in present], [c for c in unseen if c in present],
                         "open_75_25", 0)
    (work / "prepare").mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / "prepare" / "index.json", index.to_json())
    atomic_write_json(work / "prepare" / "split.json", split.to_json())
    for kind in ("rgb", "flow"):
        folder = work / "npy" / kind
        folder.mkdir(parents=True, exist_ok=True)
        for vid in videos:
            np.save(folder / f"{vid}.npy", rng.standard_normal((shape["T"], DIM), dtype=np.float32))
    return {"videos_train": len(split.train_videos), "videos_test": len(split.test_videos),
            "classes_seen": len(split.seen), "classes_tested": len(split.unseen)}


def prior_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    slots = TEXT_SLOTS + IMAGE_TOKENS
    token_type = np.array([[0] * TEXT_SLOTS + [1] * IMAGE_TOKENS] * K, np.int8)
    mask = (np.arange(slots) < rng.integers(6, TEXT_SLOTS + 1, (K, 1))) | (token_type == 1)
    return {"joint": rng.standard_normal((K, slots, DIM), dtype=np.float32), "joint_mask": mask,
            "token_type": token_type, "name_tokens": rng.standard_normal((NAME_SLOTS, DIM), dtype=np.float32),
            "name_mask": np.arange(NAME_SLOTS) < 5, "name_embedding": rng.standard_normal(DIM, dtype=np.float32),
            "text_embedding": rng.standard_normal((K, DIM), dtype=np.float32),
            "image_embedding": rng.standard_normal((K, DIM), dtype=np.float32)}


# ----------------------------------------------------------------------------------------- the three steps


def step_import(work: Path, name: str) -> None:
    from pipeline.data.build import load_prepared
    from pipeline.features.importers import import_features
    from pipeline.features.store import PriorsStoreWriter, settings_sha256

    features = work / "features"
    for kind in ("rgb", "flow"):
        import_features("npy", work / "npy" / kind, features / f"{kind}.zarr", kind, fps=None, stride=None,
                        window=0.0, index=work / "prepare" / "index.json", columns=None, transpose=False,
                        T=DATASETS[name]["T"], rebuild=True, max_failure_fraction=0.0)
    _, split = load_prepared(work / "prepare")
    classes = sorted(set(split.seen) | set(split.unseen))
    settings = {"kind": "priors", "clip": {"model": "synthetic", "weights_sha256": "synthetic", "dim": DIM},
                "joint_unit": "concat"}
    attrs = {"kind": "priors", "encoder": "synthetic", "dim": DIM, "k": K, "joint_unit": "concat",
             "settings": settings, "settings_sha256": settings_sha256(settings)}
    writer = PriorsStoreWriter(features / "priors.zarr", attrs)
    rng = np.random.default_rng(1)
    for cls in classes:
        writer.write_class(cls, prior_arrays(rng), "synthetic")
    writer.set_classes(classes)


# The paper's model size and schedule: a config group once the settings are Hydra groups, else the overlay.
PAPER_SIZE = (ROOT / "conf" / "size" / "paper.yaml", ROOT / "configs" / "_base_" / "paper.yaml")


def configs(model: str) -> dict[str, dict]:
    """The model, loss, train, localization and evaluate sections of params.yaml (the demo), with the paper's
    model, train and localization settings laid over them for ``paper``."""
    import yaml

    from pipeline.common import load_params

    values = load_params(ROOT / "params.yaml")
    sections = {key: dict(values[key]) for key in ("model", "loss", "train", "localization", "evaluate")}
    if model == "paper":
        overlay = yaml.safe_load(next(path for path in PAPER_SIZE if path.is_file()).read_text())
        for key in ("model", "train", "localization"):
            sections[key].update(overlay.get(key) or {})
    return sections


def step_train(work: Path, model: str, device: str) -> None:
    from pipeline.data.build import load_prepared
    from pipeline.modelling.fit import TrainConfig, train

    cfg = configs(model)
    index, split = load_prepared(work / "prepare")
    train_cfg = TrainConfig.from_dict({**cfg["train"], "epochs": 1, "device": device})
    train(index, split, work / "features", cfg["model"], cfg["loss"], train_cfg, work / f"train_{model}",
          progress=False, log=lambda *_: None)


def step_evaluate(work: Path, model: str, device: str) -> None:
    from pipeline.data.build import load_prepared
    from pipeline.modelling.inference import evaluate_model

    cfg = configs(model)
    index, split = load_prepared(work / "prepare")
    evaluate_model(index, split, work / "features", work / f"train_{model}" / "model.pt", cfg["localization"],
                   cfg["evaluate"]["tious"], work / f"evaluate_{model}", n_plots=0, device=device,
                   diagnosis_tiou=cfg["evaluate"].get("diagnosis_tiou", 0.5))


def run_step(step: str, work: Path, name: str, model: str, device: str) -> dict[str, float]:
    """One step in this process; its wall time (the modules it needs imported first) and peaks."""
    import torch

    import pipeline.features.importers  # noqa: F401 - imports are not the step's cost
    import pipeline.modelling.fit  # noqa: F401
    import pipeline.modelling.inference  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    if step == "import":
        step_import(work, name)
    elif step == "train":
        step_train(work, model, device)
    else:
        step_evaluate(work, model, device)
    wall = time.perf_counter() - start
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime - cpu_before, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
            "peak_gpu_mb": None if peak_gpu is None else round(peak_gpu, 1)}


def in_child(step: str, work: Path, name: str, model: str, device: str, threads: int | None) -> dict[str, float]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=path)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--step", step, "--work", str(work),
                           "--datasets", name, "--models", model, "--device", device],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {step} of {name} ({model}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ report


def work_units(dataset: str, step: str, counts: dict[str, int]) -> int:
    """What a step's time grows with: videos imported, training videos (one epoch visits each one's pairs), and
    model forward passes of evaluate (test videos x tested classes; Charades-STA: one per query)."""
    if step == "import":
        return counts["videos_train"] + counts["videos_test"]
    if step == "train":
        return counts["videos_train"]
    if dataset == "charades":
        return counts["classes_tested"]
    return counts["videos_test"] * counts["classes_tested"]


def full_counts(dataset: str) -> dict[str, int]:
    shape = DATASETS[dataset]
    if dataset == "charades":
        return {"videos_train": shape["train"], "videos_test": shape["test"], "classes_seen": shape["queries"][0],
                "classes_tested": shape["queries"][1]}
    seen = round(0.75 * shape["classes"])
    return {"videos_train": shape["train"], "videos_test": shape["test"], "classes_seen": seen,
            "classes_tested": shape["classes"] - seen}


def fit_linear(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(fixed, per unit) of time = fixed + per_unit x units, least squares (None below two distinct sizes)."""
    if len({u for u, _ in points}) < 2:
        return None
    per_unit, fixed = np.polyfit([u for u, _ in points], [t for _, t in points], 1)
    return float(fixed), float(per_unit)


def report_table(rows: list[dict]) -> str:
    lines = ["| data set | fraction | train / test videos | classes (seen / tested) | model | step | wall s | CPU s | "
             "peak RSS MB | peak GPU MB |", "|---|---:|---|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        gpu = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}"
        lines.append(f"| {r['dataset']} | {r['fraction']:g} | {r['videos_train']} / {r['videos_test']} | "
                     f"{r['classes_seen']} / {r['classes_tested']} | {r['model']} | {r['step']} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {gpu} |")
    return "\n".join(lines)


def extrapolation(rows: list[dict]) -> list[dict]:
    """Per data set, model and step: time = fixed + per unit x units (``work_units``) fitted on the measured sizes,
    then read at the full size's units; for wall and CPU seconds (CPU seconds are the steadier on a shared
    machine)."""
    out = []
    keys = sorted({(r["dataset"], r["model"], r["step"]) for r in rows})
    for dataset, model, step in keys:
        same = [r for r in rows if (r["dataset"], r["model"], r["step"]) == (dataset, model, step)]
        full = work_units(dataset, step, full_counts(dataset))
        entry: dict = {"dataset": dataset, "model": model, "step": step, "units_measured":
                       sorted({r["units"] for r in same}), "units_full": full}
        for what in ("wall_s", "cpu_s"):  # not memory: a training step's peak stops growing once a batch is full
            fit = fit_linear([(r["units"], r[what]) for r in same])
            if fit is not None:
                entry[f"{what}_fixed"], entry[f"{what}_per_unit"] = round(fit[0], 2), fit[1]
                entry[f"{what}_full"] = round(fit[0] + fit[1] * full, 1)
        if "wall_s_full" in entry:
            out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="thumos14,activitynet,charades")
    parser.add_argument("--fractions", default="0.01,0.02", help="fractions of each data set's videos")
    parser.add_argument("--models", default="demo,paper", help="demo (params.yaml) and/or paper")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per step (default: torch's)")
    parser.add_argument("--report", type=Path, default=None, help="folder for scale.json and scale.md")
    parser.add_argument("--keep", type=Path, default=None, help="keep the stores here (default: a temp folder)")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    datasets, models = args.datasets.split(","), args.models.split(",")
    if args.step:  # a child: one step, its figures as the last stdout line
        print(json.dumps(run_step(args.step, args.work, datasets[0], models[0], args.device)))
        return
    bad = [d for d in datasets if d not in DATASETS] + [m for m in models if m not in ("demo", "paper")]
    if bad:
        raise SystemExit(f"error: unknown data set or model {bad[0]!r}")
    fractions = [float(f) for f in args.fractions.split(",")]
    if any(not 0 < f <= 1 for f in fractions):
        raise SystemExit("error: --fractions: each must lie in (0, 1]")
    from benchmarks.machine import cpu_description, matmul_gflops

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    rows: list[dict] = []
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    machine = {"cpu": cpu_description(), "cores": os.cpu_count(), "device": args.device,
               "threads": torch.get_num_threads(), "fp32_matmul_gflops": round(matmul_gflops("float32"), 1),
               "load_average_before": os.getloadavg()[0]}
    print(f"# bench_scale on {machine['cpu']}, {machine['cores']} cores, device {args.device}; this machine's fp32 "
          f"matmul with {machine['threads']} thread(s): {machine['fp32_matmul_gflops']} GFLOP/s; load average "
          f"{machine['load_average_before']:.1f}", flush=True)
    try:
        for name in datasets:
            for fraction in fractions:
                work = base / f"{name}_{fraction:g}"
                shutil.rmtree(work, ignore_errors=True)
                counts = synthesize(name, fraction, work)
                for model in models:
                    for step in STEPS if model == models[0] else STEPS[1:]:
                        figures = in_child(step, work, name, model, args.device, args.threads)
                        row = {"dataset": name, "fraction": fraction, **counts, "model": model if step != "import"
                               else "-", "step": step, "units": work_units(name, step, counts), **figures}
                        rows.append(row)
                        print(f"{name:12} f={fraction:<6g} {row['model']:6} {step:9} {figures['wall_s']:8.1f} s  "
                              f"{figures['peak_rss_mb']:8.0f} MB RSS  {counts}", flush=True)
                if args.keep is None:
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    machine["load_average_after"] = os.getloadavg()[0]
    table, extra = report_table(rows), extrapolation(rows)
    print(table)
    if extra:
        print("\nExtrapolated to the full size (time = fixed + per unit x units, fitted above; NOT measured):")
        for e in extra:
            print(f"  {e['dataset']:12} {e['model']:6} {e['step']:9} {e['units_measured']} -> {e['units_full']} units: "
                  f"wall ~{e['wall_s_full']:.0f} s (fixed {e['wall_s_fixed']:.1f} s), "
                  f"CPU ~{e.get('cpu_s_full', 0):.0f} s (fixed {e.get('cpu_s_fixed', 0):.1f} s)")
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "scale.json").write_text(json.dumps({"machine": machine, "rows": rows,
                                                            "extrapolated": extra}, indent=1) + "\n")
        (args.report / "scale.md").write_text(f"{json.dumps(machine)}\n\n{table}\n")


if __name__ == "__main__":
    main()
