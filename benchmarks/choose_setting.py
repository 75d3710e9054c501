"""Choose a setting on training videos only: compare alternative params on validation splits of each open split.

    .venv/bin/python -m benchmarks.choose_setting --option model.image_tokens=patches --option model.image_tokens=pooled

For every open split in ``results.splits`` and every seed in ``--seeds``, a validation split holds out a seeded
quarter of the split's *seen* classes (``pipeline.data.splits.validation_split``): the model trains on training
videos free of them and is scored on the training videos that show them. The test videos and the unseen classes
are never read, so the winner can become a default without tuning on the test set. Prints average mAP (%) of each
option, mean ± std over splits and seeds, and each run's figure.
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
    return {"grizal": outcome["metrics"]["grizal"]["average_mAP"],
            "baseline": outcome["metrics"]["baseline"]["average_mAP"], "held_out": held.unseen}


def _stat(values: list[float]) -> str:
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
    figures: dict[str, list[float]] = {}
    baselines: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for option in args.option:
            chosen = with_option(values, option)
            for split_id in split_ids:
                for seed in seeds:
                    started = time.time()
                    work = Path(tmp) / option / f"{split_id}_{seed}"
                    out = run(chosen, index, int(split_id), seed, Path(args.features), work)
                    figures.setdefault(option, []).append(out["grizal"])
                    if option == args.option[0]:
                        baselines.append(out["baseline"])
                    print(f"{option} split {split_id} seed {seed}: avg mAP {100 * out['grizal']:.1f} "
                          f"(baseline {100 * out['baseline']:.1f}; held out {', '.join(out['held_out'])}) "
                          f"in {time.time() - started:.0f} s", flush=True)
    print("\n| option | validation avg mAP (%) | runs |\n| --- | ---: | ---: |")
    for option, values_ in figures.items():
        print(f"| {option} | {_stat(values_)} | {len(values_)} |")
    print(f"| training-free CLIP baseline | {_stat(baselines)} | {len(baselines)} |")


if __name__ == "__main__":
    main()
