"""The zero-shot protocols: open-set 75/25 and 50/50 (the published split lists) and closed-set."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common import UserError, read_json
from pipeline.data.index import Index

SPLIT_ROOT = Path(__file__).parent / "shipped" / "zero_shot_splits"
SETTINGS = {"75_25": "train_75_test_25", "50_50": "train_50_test_50"}
LIST_DATASETS = {"thumos14": "THUMOS14", "activitynet": "ActivityNet"}


@dataclass
class Split:
    protocol: str
    split_id: int | None
    seen: list[str]
    unseen: list[str]
    train_videos: list[str]
    test_videos: list[str]

    def to_json(self) -> dict:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, data: Any, where: str | os.PathLike = "split.json") -> Split:
        if not isinstance(data, dict) or sorted(data) != sorted(cls.__dataclass_fields__):
            raise UserError(where, f"not a split: expected the keys {', '.join(cls.__dataclass_fields__)}")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Split:
        return cls.from_json(read_json(path), path)


def read_list(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "split list not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(path, f"not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(path, "split list is empty")
    if len(set(names)) != len(names):
        raise UserError(path, "split list names a class twice")
    return names


def split_list_paths(dataset: str, setting: str, split_id: int) -> tuple[Path, Path]:
    if dataset not in LIST_DATASETS:
        raise UserError(None, f"unknown data set '{dataset}' (choose from {', '.join(LIST_DATASETS)})")
    if setting not in SETTINGS:
        raise UserError(None, f"split setting must be one of {sorted(SETTINGS)}, not '{setting}'")
    folder = SPLIT_ROOT / SETTINGS[setting] / LIST_DATASETS[dataset]
    return folder / "train" / f"split_{split_id}.list", folder / "test" / f"split_{split_id}.list"


def published_split(dataset: str, setting: str, split_id: int, where: str | os.PathLike | None = "--split",
                    key: str | None = None) -> tuple[list[str], list[str]]:
    """(seen, unseen) class lists of a published open-set split; an id it lacks is an error naming ``where``
    (the params file, or the command-line option) and ``key`` (the params key that gave the id)."""
    train_path, test_path = split_list_paths(dataset, setting, split_id)
    if not train_path.is_file():
        available = sorted(int(p.stem.removeprefix("split_")) for p in train_path.parent.glob("split_*.list"))
        named = f"{key}: expected one of {available} ({dataset} {setting}), got {split_id}" if key else \
            f"{dataset} {setting} has no split {split_id} (available: {available})"
        raise UserError(where, named)
    return read_list(train_path), read_list(test_path)


def open_set(index: Index, seen: list[str], unseen: list[str], protocol: str, split_id: int | None,
             source: str | os.PathLike = "split", allow_empty: bool = False) -> Split:
    """Train on train-subset videos free of unseen classes (seen segments only); test on test-subset videos
    that have unseen-class ground truth. ``allow_empty`` (inference): unseen classes need no annotation, and
    test-subset videos without any annotation are test videos too (predicted, with no ground truth to score)."""
    known = set(index.classes)
    for names in (seen,) if allow_empty else (seen, unseen):
        missing = sorted(set(names) - known)
        if missing:
            raise UserError(source, f"split names classes the data set does not have: {', '.join(missing)}"
                                    + _skipped_hint(index))
    overlap = sorted(set(seen) & set(unseen))
    if overlap:
        raise UserError(source, f"classes both seen and unseen: {', '.join(overlap)}")
    seen_set, unseen_set = set(seen), set(unseen)
    train, test = [], []
    for vid, video in sorted(index.videos.items()):
        labels = video.labels()
        if video.subset == "train" and labels & seen_set and not labels & unseen_set:
            train.append(vid)
        elif video.subset == "test" and (labels & unseen_set or (allow_empty and not labels)):
            test.append(vid)
    return Split(protocol, split_id, sorted(seen), sorted(unseen), train, test)


def closed_set(index: Index, allow_empty: bool = False) -> Split:
    if index.dataset == "charades":
        return _sentence_queries(index, allow_empty)
    classes = index.classes
    train = sorted(v for v, video in index.videos.items() if video.subset == "train" and video.segments)
    test = sorted(v for v, video in index.videos.items()
                  if video.subset == "test" and (video.segments or allow_empty))
    return Split("closed", None, classes, classes, train, test)


def _sentence_queries(index: Index, allow_empty: bool) -> Split:
    """Charades-STA: the training sentences are the seen classes (training's positives and negatives), the test
    sentences the queries scored, each in its own video only; no test sentence becomes a training negative."""
    train = sorted(v for v, video in index.videos.items() if video.subset == "train" and video.segments)
    test = sorted(v for v, video in index.videos.items()
                  if video.subset == "test" and (video.segments or allow_empty))
    seen = sorted({s.label for v in train for s in index.videos[v].segments})
    queries = sorted({s.label for v in test for s in index.videos[v].segments})
    return Split("closed", None, seen, queries, train, test)


def validation_split(split: Split, index: Index, fraction: float = 0.25, seed: int = 0) -> Split:
    """A zero-shot split made of ``split``'s training side only, to choose settings without the test set: a seeded
    ``fraction`` of its seen classes is held out as pseudo-unseen; training videos free of them train, training
    videos that show them are scored."""
    seen = sorted(split.seen)
    if len(seen) < 2:
        raise UserError(None, f"a validation split needs at least 2 seen classes, the split has {len(seen)}")
    held = sorted(random.Random(seed).sample(seen, min(len(seen) - 1, max(1, round(len(seen) * fraction)))))
    kept, held_set = sorted(set(seen) - set(held)), set(held)
    train, test = [], []
    for vid in split.train_videos:
        labels = index.videos[vid].labels()
        (test if labels & held_set else train).append(vid)
    return Split(f"validation_{split.protocol}", split.split_id, kept, held, sorted(train), sorted(test))


def closed_validation_split(split: Split, fraction: float = 0.25, seed: int = 0) -> Split:
    """A closed-set split made of ``split``'s training videos only: a seeded ``fraction`` of them is held out and
    scored on every seen class, the rest trains. It chooses settings for the closed-set protocol without its test
    videos, as ``validation_split`` does for the open splits."""
    videos = sorted(split.train_videos)
    if len(videos) < 2:
        raise UserError(None, f"a closed-set validation split needs at least 2 training videos, got {len(videos)}")
    held = set(random.Random(seed).sample(videos, min(len(videos) - 1, max(1, round(len(videos) * fraction)))))
    seen = sorted(split.seen)
    return Split(f"validation_{split.protocol}", split.split_id, seen, seen,
                 [vid for vid in videos if vid not in held], sorted(held))


def _skipped_hint(index: Index) -> str:
    if not index.skipped:
        return ""
    first = index.skipped[0]
    return f" ({len(index.skipped)} item(s) were skipped, e.g. {first['video']}: {first['reason']})"
