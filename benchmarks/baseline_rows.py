"""The two training-free baselines alone on every split of the results grid: no training, seconds.

    python -m benchmarks.baseline_rows [--params params.yaml] [--validation --seeds 0,1] [--option KEY=VALUE ...]

Scores "CLIP, class name + background" and "CLIP, priors prototype" (``pipeline.modelling.baselines``) exactly as the
evaluate stage does (same features, T, ``localization`` section updated by ``evaluate.baseline_localization``, and
``evaluate.tious``), on the closed-set test split and each open split of ``results.splits``; prints avg mAP (%) per
split and the mean over the open splits.
With ``--validation``, each open split's validation splits instead (``pipeline.data.splits.validation_split``: seen
classes held out on the training videos, one per seed), so an ``--option`` of the localization section can be
compared for the baselines without reading a test video. With ``--table``, the rows the README's results table
gives them: mAP (%) at each reported tIoU, avg mAP and avg tIoU, mean ± std over the open splits, and closed-set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.choose_setting import with_option
from pipeline.common import load_params
from pipeline.data.build import build_split
from pipeline.data.index import Index
from pipeline.data.splits import Split, validation_split
from pipeline.features.inputs import FeatureSet
from pipeline.modelling.baselines import BASELINES, baseline_curves
from pipeline.modelling.fit import TrainConfig
from pipeline.modelling.grid import percent_stat
from pipeline.modelling.inference import (
    baseline_localization,
    baseline_undefined,
    curves_to_results,
    metrics_json,
    score,
)
from pipeline.modelling.scoring import ground_truth_of, reported_keys, thresholds_from_params


def baseline_reports(values: dict, index: Index, split: Split, features: FeatureSet, T: int) -> dict[str, dict]:
    """{metrics key: scored report (``metrics_json``)} of both baselines on ``split``'s test videos and classes."""
    ids, classes = list(split.test_videos), list(split.unseen)
    durations = {vid: index.videos[vid].duration for vid in ids}
    ids = features.within_decoded(features.extracted(ids, use_flow=False), durations)
    gt = ground_truth_of(index, ids, classes)
    scored = [c for c in classes if c in set(gt.label)]
    videos = features.videos(ids, durations, T, use_flow=False)
    curves = baseline_curves(videos, features.priors(classes))
    loc = baseline_localization(values["localization"], values["evaluate"].get("baseline_localization"))
    tious = thresholds_from_params(values["evaluate"])
    return {name: metrics_json(score(curves_to_results(probs, videos, classes, loc), gt, scored, tious))
            for name, probs in curves.items()}


def baseline_scores(values: dict, index: Index, split: Split, features: FeatureSet, T: int) -> dict[str, float]:
    """{metrics key: avg mAP} of both baselines on ``split``'s test videos and evaluated classes."""
    return {name: report["average_mAP"] for name, report in baseline_reports(values, index, split, features, T).items()}


def table_rows(reports: dict[str, list[dict]], tious: list[str]) -> list[str]:
    """README rows ``| setting | method | mAP@t ... | avg mAP | avg tIoU | runs |`` of {setting: [report per split]}
    for each baseline, each report being ``baseline_reports``' output on one split."""
    rows = []
    for setting, per_split in reports.items():
        for name, label in BASELINES.items():
            mine = [report[name] for report in per_split]
            columns = [[m["mAP"][t] for m in mine] for t in tious]
            columns += [[m["average_mAP"] for m in mine], [m["average_tIoU"] for m in mine]]
            cells = [percent_stat(column) for column in columns] + [str(len(mine))]
            rows.append(f"| {setting} | {label} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepare", default="cache/prepare", help="the prepare stage's folder (its index.json)")
    parser.add_argument("--features", default="cache/features")
    parser.add_argument("--validation", action="store_true", help="validation splits of the training videos")
    parser.add_argument("--seeds", default="0", help="comma-separated validation seeds (with --validation)")
    parser.add_argument("--option", action="append", help="key=value ..., yaml values; one table block each")
    parser.add_argument("--table", action="store_true",
                        help="the README rows: mAP at each reported tIoU, avg mAP, avg tIoU, on the test splits")
    args = parser.parse_args()
    values = load_params(args.params)
    index = Index.load(Path(args.prepare) / "index.json")
    features = FeatureSet.open(args.features)
    if (why := baseline_undefined(features.attrs("rgb"), features.attrs("priors"))) is not None:
        raise SystemExit(f"error: {args.features}: the training-free baselines are {why}")
    T = TrainConfig.from_dict(values["train"], args.params).T or features.T  # the runs' T, as evaluate reads it
    options = args.option or [""]
    if args.table:
        closed = build_split(index, {**values["prepare"], "protocol": "closed"})
        opened = [build_split(index, {**values["prepare"], "protocol": "open", "split_id": int(s)})
                  for s in values["results"]["splits"]]
        reports = {"closed-set": [baseline_reports(values, index, closed, features, T)],
                   "open-set (unseen)": [baseline_reports(values, index, split, features, T) for split in opened]}
        tious = reported_keys(next(iter(reports["closed-set"][0].values())))
        print("| setting | method | " + " | ".join(f"mAP@{t}" for t in tious) + " | avg mAP | avg tIoU | runs |")
        print("\n".join(table_rows(reports, tious)))
        return
    print("| option | split | " + " | ".join(BASELINES.values()) + " |\n| --- | --- |" + " ---: |" * len(BASELINES))
    for option in options:
        chosen = with_option(values, option)
        splits = [] if args.validation else [("closed-set", build_split(index, {**chosen["prepare"],
                                                                                "protocol": "closed"}))]
        for split_id in chosen["results"]["splits"]:
            split = build_split(index, {**chosen["prepare"], "protocol": "open", "split_id": int(split_id)})
            splits += ([(f"open {split_id} validation seed {s}", validation_split(split, index, seed=int(s)))
                        for s in args.seeds.split(",")] if args.validation else [(f"open {split_id}", split)])
        open_figures: dict[str, list[float]] = {name: [] for name in BASELINES}
        for label, split in splits:
            figures = baseline_scores(chosen, index, split, features, T)
            if label.startswith("open"):
                for name in BASELINES:
                    open_figures[name].append(figures[name])
            print(f"| {option or '-'} | {label} | " + " | ".join(f"{100 * figures[n]:.1f}" for n in BASELINES) + " |")
        means = [percent_stat(v) for v in open_figures.values()]
        print(f"| {option or '-'} | open splits, mean ± std | " + " | ".join(means) + " |", flush=True)


if __name__ == "__main__":
    main()
