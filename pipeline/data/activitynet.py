"""ActivityNet v1.3: the official ``activity_net.v1-3.min.json`` and the BMN-style JSON + video_info_new.csv.

The official format (``{"database": {vid: {"subset", "duration", "annotations": [...]}}}``) is also the format
of custom data sets and of the demo world.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from pipeline.common import UserError, read_json
from pipeline.data.index import Index, SegmentChecker, VideoEntry, check_duration, check_fps, parse_segments

# ActivityNet's "validation" subset is the test set of every TAL paper (its test labels are withheld).
SUBSET_MAP = {"training": "train", "train": "train", "validation": "test", "val": "test", "test": "test",
              "testing": "test"}


def parse_activitynet_json(path: str | os.PathLike, dataset: str = "activitynet",
                           allow_empty: bool = False) -> Index:
    """Parse the official ActivityNet format. ``allow_empty`` keeps videos with no annotations (inference)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise UserError(path, 'expected {"database": {video_id: {...}}} (ActivityNet format)')
    checker = SegmentChecker(path)
    videos: dict[str, VideoEntry] = {}
    for vid, record in data["database"].items():
        if not isinstance(record, dict):
            raise UserError(path, f"video {vid}: expected an object")
        subset = SUBSET_MAP.get(str(record.get("subset", "")).lower())
        if subset is None:
            checker.skip(vid, f"unknown subset {record.get('subset')!r}")
            continue
        duration = check_duration(path, vid, record.get("duration"))
        segments = parse_segments(checker, vid, record.get("annotations"), duration)
        if not segments and not allow_empty:
            checker.skip(vid, "no usable annotations")
            continue
        fps = check_fps(path, vid, record.get("fps"))
        videos[vid] = VideoEntry(None, duration, fps, subset, segments)
    if not videos:
        raise UserError(path, "no usable videos")
    return Index(dataset, videos, checker.skipped)


def parse_activitynet_bmn(anno_path: str | os.PathLike, info_csv: str | os.PathLike) -> Index:
    """BMN-style ``anet_anno_action.json`` (same layout as THUMOS14's) with ``video_info_new.csv`` subsets."""
    info = read_video_info(info_csv)
    data = read_json(anno_path)
    if not isinstance(data, dict):
        raise UserError(anno_path, "expected {video_id: {duration_second, annotations}}")
    checker = SegmentChecker(anno_path)
    videos: dict[str, VideoEntry] = {}
    for vid, record in data.items():
        if vid not in info:
            checker.skip(vid, f"not listed in {info_csv}")
            continue
        subset, fps, seconds = info[vid]
        duration = check_duration(anno_path, vid, record.get("duration_second", seconds))
        segments = parse_segments(checker, vid, record.get("annotations"), duration)
        if segments:
            videos[vid] = VideoEntry(None, duration, fps, subset, segments)
        else:
            checker.skip(vid, "no usable annotations")
    if not videos:
        raise UserError(anno_path, "no usable videos")
    return Index("activitynet", videos, checker.skipped)


def read_video_info(path: str | os.PathLike) -> dict[str, tuple[str, float, float]]:
    """``video,numFrame,seconds,fps,rfps,subset,featureFrame`` -> {video: (subset, fps, seconds)}."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "file not found")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"video", "seconds", "fps", "subset"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(path, f"missing columns {sorted(missing)}")
        out = {}
        for row in reader:
            subset = SUBSET_MAP.get(row["subset"].lower())
            if subset is None:
                raise UserError(path, f"video {row['video']}: unknown subset {row['subset']!r}")
            try:
                out[row["video"]] = (subset, float(row["fps"]), float(row["seconds"]))
            except ValueError:
                raise UserError(path, f"video {row['video']}: fps/seconds are not numbers") from None
    return out


def read_class_list(path: str | os.PathLike) -> list[str]:
    """ActivityNet's ``action_name.csv``: a header ``action`` then one class a line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "file not found")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or lines[0] != "action":
        raise UserError(path, "expected a header line 'action'")
    return lines[1:]
