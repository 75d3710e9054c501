"""What one cue alone scores on the demo world, over several world seeds, from the plans alone (no video is rendered).

    python -m benchmarks.demo_world_cues [--seeds 0 1 2 3 4] [--T 64]

For every world seed it plans the test videos exactly as the demo_world stage does (``pipeline.data.demo``), then
scores the reference detectors of ``pipeline.modelling.reference`` (the class's shape visible; that shape moving;
that shape moving in the class's direction) with the localization settings of params.yaml, on each open split and
on the closed set. Issue 23's bar for a world without shortcuts: on the open splits, "shape visible" at most 25 avg
mAP and "shape moving" at most 50, on every seed.
"""

from __future__ import annotations

import argparse
import statistics

from grizal.localization import localization_config
from pipeline.common import load_params
from pipeline.data import demo_vocab as vocab
from pipeline.data.build import build_split
from pipeline.data.demo import DemoConfig, planned_video, video_plan
from pipeline.data.index import SCHEMA, Index
from pipeline.modelling.reference import DETECTORS, reference_metrics
from pipeline.modelling.scoring import ground_truth_of, thresholds_from_params


def planned_world(cfg: DemoConfig) -> tuple[Index, dict]:
    """The test videos' index entries and actor plans of the world ``cfg`` (the same generators as rendering)."""
    database, plans = {}, {}
    for n in range(cfg.videos_per_class_test * len(vocab.all_classes())):
        vid, _rng, (duration, segments, actors, wanderers) = planned_video(cfg, "validation", n)
        database[vid] = {"subset": "test", "duration": duration, "fps": cfg.fps,
                         "segments": [{"label": label, "start": s, "end": e} for label, s, e in segments]}
        plans[vid] = video_plan(duration, actors, wanderers)
    return Index.from_json({"schema": SCHEMA, "dataset": "demo", "videos": database}), plans


def cue_table(cfg: DemoConfig, T: int, loc_cfg: dict, tious) -> dict[str, dict[str, float]]:
    """{setting: {detector: avg mAP %}}: the mean over the open splits, and the closed set."""
    index, plans = planned_world(cfg)
    out: dict[str, dict[str, list[float]]] = {}
    settings = [("open", s) for s in range(vocab.N_SPLITS)] + [("closed", None)]
    for protocol, split_id in settings:
        split = build_split(index, {"protocol": protocol, "split_id": split_id or 0})
        ids, classes = list(split.test_videos), list(split.unseen)
        gt = ground_truth_of(index, ids, classes)
        scored = [c for c in classes if c in set(gt.label)]
        durations = {vid: index.videos[vid].duration for vid in ids}
        metrics = reference_metrics(plans, ids, classes, scored, gt, durations, T, loc_cfg, tious)
        for name in DETECTORS:
            out.setdefault(protocol, {}).setdefault(name, []).append(100 * metrics[name]["average_mAP"])
    return {setting: {name: statistics.mean(v) for name, v in row.items()} for setting, row in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--T", type=int, default=None, help="snippets per video (default: what the runs read, "
                                                            "train.T, else extract.T)")
    args = parser.parse_args()
    values = load_params(args.params)
    T = args.T or int((values.get("train") or {}).get("T") or values["extract"]["T"])
    loc_cfg = localization_config(values["localization"])
    tious = thresholds_from_params(values["evaluate"])
    demo = {k: v for k, v in values["demo"].items() if k in DemoConfig.model_fields}
    print(f"| world seed | setting | {' | '.join(DETECTORS)} |")
    print("|---|---|" + "---:|" * len(DETECTORS))
    for seed in args.seeds:
        table = cue_table(DemoConfig(**{**demo, "seed": seed}), T, loc_cfg, tious)
        for setting, row in table.items():
            label = "open splits (mean)" if setting == "open" else "closed-set"
            print(f"| {seed} | {label} | " + " | ".join(f"{row[name]:.1f}" for name in DETECTORS) + " |")


if __name__ == "__main__":
    main()
