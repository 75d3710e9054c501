"""Choose a setting on training videos only: compare alternative params on validation splits of each open split.

    .venv/bin/python -m benchmarks.choose_setting --option model.image_tokens=patches --option model.image_tokens=pooled

For every open split in ``results.splits`` and every seed in ``--seeds``, a validation split holds out a seeded
quarter of the split's *seen* classes (``pipeline.data.splits.validation_split``): the model trains on training
videos free of them and is scored on the training videos that show them. The test videos and the unseen classes
are never read, so the winner can become a default without tuning on the test set. Prints average mAP (%) of each
option, mean ± std over splits and seeds, and each run's figure, for GRIZAL and for both training-free baselines
(``pipeline.modelling.baselines``): an option of the shared ``localization`` section is chosen for them too.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.common import load_params
from pipeline.data.build import build_split
from pipeline.data.index import Index
from pipeline.data.splits import validation_split
from pipeline.modelling.baselines import BASELINES
from pipeline.modelling.fit import TrainConfig, train
from pipeline.modelling.inference import evaluate_model
from pipeline.modelling.scoring import thresholds_from_params
from tests.support.params_edit import set_dotted


def with_option(values: dict, option: str) -> dict:
    """``values`` with the option's assignments (``key=value``, space-separated, values in yaml) applied."""
    out = copy.deepcopy(values)
    for assignment in option.split():
        key, _, raw = assignment.partition("=")
        set_dotted(out, key, yaml.safe_load(raw))
    return out


def run(values: dict, index: Index, split_id: int, seed: int, features: Path, work: Path) -> dict:
    split = build_split(index, {**values["prepare"], "protocol": "open", "split_id": split_id})
    held = validation_split(split, index, seed=seed)
    train_cfg = TrainConfig.from_dict({**values["train"], "seed": seed})
    model_path = train(index, held, features, copy.deepcopy(values["model"]), values.get("loss", {}), train_cfg,
                       work, progress=False, log=lambda _msg: None)
    outcome = evaluate_model(index, held, features, model_path, values["localization"],
                             thresholds_from_params(values["evaluate"]), n_plots=0)
    methods = ["grizal", *BASELINES]
    return {**{name: outcome["metrics"][name]["average_mAP"] for name in methods}, "held_out": held.unseen}


def _stat(values: list[float | None]) -> str:
    if any(v is None for v in values):  # a baseline undefined on these features
        return "n/a"
    pct = [100 * v for v in values]
    return f"{statistics.mean(pct):.1f} ± {statistics.stdev(pct):.1f}" if len(pct) > 1 else f"{pct[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--option", action="append", required=True, help="key=value ..., yaml values; 2+")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepare", default="cache/prepare", help="the prepare stage's folder (its index.json)")
    parser.add_argument("--features", default="cache/features")
    parser.add_argument("--seeds", default="0", help="comma-separated validation/training seeds")
    parser.add_argument("--splits", default=None, help="comma-separated open splits (default: results.splits)")
    args = parser.parse_args()
    values = load_params(args.params)
    index = Index.load(Path(args.prepare) / "index.json")
    seeds = [int(s) for s in args.seeds.split(",")]
    split_ids = [int(s) for s in args.splits.split(",")] if args.splits else values["results"]["splits"]
    figures: dict[str, dict[str, list[float | None]]] = {}  # option -> method -> one figure per run
    with tempfile.TemporaryDirectory() as tmp:
        for option in args.option:
            chosen = with_option(values, option)
            for split_id in split_ids:
                for seed in seeds:
                    started = time.time()
                    work = Path(tmp) / option / f"{split_id}_{seed}"
                    out = run(chosen, index, int(split_id), seed, Path(args.features), work)
                    for method in ["grizal", *BASELINES]:
                        figures.setdefault(option, {}).setdefault(method, []).append(out[method])
                    baselines = "; ".join(f"{label} {_stat([out[name]])}" for name, label in BASELINES.items())
                    print(f"{option} split {split_id} seed {seed}: avg mAP {100 * out['grizal']:.1f} "
                          f"({baselines}; held out {', '.join(out['held_out'])}) "
                          f"in {time.time() - started:.0f} s", flush=True)
    print(option_table(figures))


def option_table(figures: dict[str, dict[str, list[float | None]]]) -> str:
    """Markdown: per option, validation avg mAP (%) of GRIZAL and of each training-free baseline, mean ± std."""
    lines = ["| option | GRIZAL validation avg mAP (%) | " + " | ".join(BASELINES.values()) + " | runs |",
             "| --- |" + " ---: |" * (len(BASELINES) + 2)]
    for option, by_method in figures.items():
        cells = [_stat(by_method[method]) for method in ["grizal", *BASELINES]]
        lines.append(f"| {option} | {' | '.join(cells)} | {len(by_method['grizal'])} |")
    return "\n" + "\n".join(lines)


if __name__ == "__main__":
    main()
