"""THUMOS14 in the BMN/STALE-style annotation JSON: validation videos train, test videos test."""

from __future__ import annotations

import os

from pipeline.common import UserError, read_json
from pipeline.data.index import Index, SegmentChecker, VideoEntry, check_duration, parse_segments


def parse_thumos(path: str | os.PathLike) -> Index:
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise UserError(path, "expected {video_id: {duration_second, annotations}} (BMN-style THUMOS14)")
    checker = SegmentChecker(path)
    videos: dict[str, VideoEntry] = {}
    for vid, record in data.items():
        if not isinstance(record, dict) or "annotations" not in record:
            raise UserError(path, f"video {vid}: missing 'annotations'")
        if vid.startswith("video_validation"):
            subset = "train"
        elif vid.startswith("video_test"):
            subset = "test"
        else:
            checker.skip(vid, "id is neither video_validation_* nor video_test_*")
            continue
        duration = check_duration(path, vid, record.get("duration_second"))
        frames = record.get("duration_frame")
        fps = round(float(frames) / duration, 3) if frames else None
        segments = parse_segments(checker, vid, record["annotations"], duration)
        if segments:
            videos[vid] = VideoEntry(None, duration, fps, subset, segments)
        else:
            checker.skip(vid, "no usable annotations")
    return Index("thumos14", videos, checker.skipped)
