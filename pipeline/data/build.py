"""The canonical index and the zero-shot split of the data set a ``prepare`` params section names.

``prepare`` writes them to the prepare stage's folder: ``index.json`` (every usable video), ``split.json``
(seen/unseen classes, train/test videos) and ``skipped.json`` (what was dropped and why); ``load_prepared``
reads them back. ``annotated_classes`` reads the classes before any index exists (generate's dry run), and the
results stage builds the split of each run of its grid with ``build_split``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.common import UserError, atomic_write_json
from pipeline.data import demo_vocab
from pipeline.data.activitynet import parse_activitynet_bmn, parse_activitynet_json
from pipeline.data.charades import parse_charades_sta
from pipeline.data.index import Index, attach_videos
from pipeline.data.splits import LIST_DATASETS, Split, closed_set, open_set, published_split, read_list
from pipeline.data.thumos import parse_thumos

DATASETS = ("demo", "thumos14", "activitynet", "charades", "custom")


def _required(cfg: dict[str, Any], key: str, where: str) -> Any:
    if cfg.get(key) in (None, ""):
        raise UserError(where, f"prepare.{key} is required for dataset '{cfg.get('dataset')}'")
    return cfg[key]


def build_index(cfg: dict[str, Any], where: str = "params.yaml", videos: bool = True) -> Index:
    """The canonical index of the configured data set; ``videos=False`` reads the annotations only."""
    dataset = cfg.get("dataset")
    if dataset not in DATASETS:
        raise UserError(where, f"prepare.dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")
    if dataset == "thumos14":
        index = parse_thumos(_required(cfg, "annotations", where))
    elif dataset == "activitynet":
        if cfg.get("video_info"):
            index = parse_activitynet_bmn(_required(cfg, "annotations", where), cfg["video_info"])
        else:
            index = parse_activitynet_json(_required(cfg, "annotations", where))
    elif dataset == "charades":
        sta = {"train": _required(cfg, "sta_train", where), "test": _required(cfg, "sta_test", where)}
        index = parse_charades_sta(sta, _required(cfg, "charades_csv", where))
    else:
        index = parse_activitynet_json(_required(cfg, "annotations", where), dataset,
                                       allow_empty=bool(cfg.get("allow_empty", False)))
    if videos:
        attach_videos(index, cfg.get("video_dir"), cfg.get("annotations"))
    return index


def annotated_classes(cfg: dict[str, Any], where: str = "params.yaml") -> list[str]:
    """The classes of the configured data set, read before any video or index exists (e.g. to price the priors
    of a paper config in a fresh clone): from its annotations; without them, from what ships with the project
    (the demo world's vocabulary, the published THUMOS14/ActivityNet split lists)."""
    dataset = cfg.get("dataset")
    annotations = cfg.get("annotations")
    if dataset == "demo" and not (annotations and Path(annotations).is_file()):
        return sorted(demo_vocab.all_classes())
    if dataset in LIST_DATASETS and not (annotations and Path(annotations).is_file()):
        setting = _split_setting(cfg)
        seen, unseen = published_split(dataset, setting if setting in ("75_25", "50_50") else "75_25", 0)
        return sorted(set(seen) | set(unseen))
    return build_index(cfg, where, videos=False).classes


def _split_setting(cfg: dict[str, Any]) -> str:
    # YAML reads an unquoted 75_25 as the integer 7525.
    return {"7525": "75_25", "5050": "50_50"}.get(str(cfg.get("split_setting")), str(cfg.get("split_setting")))


def check_split_id(cfg: dict[str, Any], split_id: int, where: str | os.PathLike, key: str = "prepare.split_id") -> None:
    """An open-set split id the data set has (the demo world's, a published list's), checked at a stage's door
    before any work; ``key`` names the params key that gave it."""
    if cfg.get("protocol", "closed") != "open" or cfg.get("unseen_list"):
        return
    dataset = cfg.get("dataset")
    if dataset == "demo" and not 0 <= split_id < demo_vocab.N_SPLITS:
        raise UserError(where, f"{key}: expected one of {list(range(demo_vocab.N_SPLITS))} (the demo world's "
                               f"splits), got {split_id}")
    if dataset in LIST_DATASETS:
        published_split(dataset, _split_setting(cfg), split_id, where, key)


def build_split(index: Index, cfg: dict[str, Any], where: str | os.PathLike = "params.yaml",
                key: str = "prepare.split_id") -> Split:
    protocol = cfg.get("protocol", "closed")
    allow_empty = bool(cfg.get("allow_empty", False))
    if protocol == "closed":
        if not index.classes:
            raise UserError(where, "closed-set needs annotated classes; to localize classes that no annotation "
                                   "names, use protocol: open with unseen_list")
        return closed_set(index, allow_empty)
    if protocol != "open":
        raise UserError(where, f"prepare.protocol must be 'open' or 'closed', not {protocol!r}")
    split_id = int(cfg.get("split_id", 0))
    dataset = index.dataset
    if cfg.get("unseen_list"):
        unseen = read_list(cfg["unseen_list"])
        seen = read_list(cfg["seen_list"]) if cfg.get("seen_list") else sorted(set(index.classes) - set(unseen))
        if allow_empty:  # the classes to localize in unlabelled videos: priors are made for them too
            index.unannotated = sorted(set(unseen) - set(index.classes))
        return open_set(index, seen, unseen, "open_custom", None, cfg["unseen_list"], allow_empty)
    check_split_id({**cfg, "dataset": dataset}, split_id, where, key)
    if dataset == "demo":
        unseen = demo_vocab.unseen_classes(split_id)
        seen = sorted(set(demo_vocab.all_classes()) - set(unseen))
        return open_set(index, seen, unseen, "open_demo", split_id, where)
    if dataset in ("thumos14", "activitynet"):
        setting = _split_setting(cfg)
        seen, unseen = published_split(dataset, setting, split_id, where, key)
        if seen == unseen:  # THUMOS14 50/50 split_10 lists all 20 classes on both sides: the closed set
            return closed_set(index)
        return open_set(index, seen, unseen, f"open_{setting}", split_id, f"{dataset} {setting} split_{split_id}")
    raise UserError(where, f"open-set on '{dataset}' needs prepare.unseen_list (one class a line)")


def prepare(cfg: dict[str, Any], out: Path, where: str = "params.yaml") -> tuple[Index, Split]:
    index = build_index(cfg, where)
    split = build_split(index, cfg, where)
    if not split.train_videos:
        raise UserError(where, f"the split leaves no training videos (none of the train subset holds a segment of "
                               f"its {len(split.seen)} seen class(es) without one of an unseen class); check the "
                               "annotations' subsets and the split's class lists before extracting")
    if not split.test_videos:
        unlabelled = "" if cfg.get("allow_empty") else ("; unlabelled test videos (empty annotations) need "
                                                        "prepare.allow_empty: true")
        raise UserError(where, f"the split leaves no test videos (test-subset videos with ground truth of the "
                               f"{'unseen' if split.protocol != 'closed' else 'annotated'} classes{unlabelled})")
    atomic_write_json(out / "index.json", index.to_json())
    atomic_write_json(out / "split.json", split.to_json())
    atomic_write_json(out / "skipped.json", index.skipped)
    return index, split


def load_prepared(prepare_dir: Path) -> tuple[Index, Split]:
    """The index and split the prepare stage wrote to ``prepare_dir``."""
    return Index.load(prepare_dir / "index.json"), Split.load(prepare_dir / "split.json")
