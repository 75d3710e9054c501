"""Charades-STA: ``charades_sta_{train,test}.txt`` lines ``VID START END##sentence`` + Charades_v1 CSV durations.

Each sentence is a query; the sentence is the segment's label, so the same localization and evaluation code
serves temporal grounding (R@n, IoU=m).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from pipeline.common import UserError
from pipeline.data.index import Index, SegmentChecker, VideoEntry, check_duration


def read_durations(path: str | os.PathLike) -> dict[str, float]:
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"id", "length"} <= set(reader.fieldnames or []):
            raise UserError(path, "expected Charades_v1 CSV columns 'id' and 'length'")
        return {row["id"]: check_duration(path, row["id"], row["length"]) for row in reader}


def parse_charades_sta(sta_files: dict[str, str | os.PathLike], csv_files: list[str | os.PathLike]) -> Index:
    """``sta_files`` maps subset ('train'/'test') to its STA txt file."""
    durations: dict[str, float] = {}
    for csv_path in csv_files:
        durations.update(read_durations(csv_path))
    videos: dict[str, VideoEntry] = {}
    skipped = []
    for subset, sta_path in sta_files.items():
        sta_path = Path(sta_path)
        if not sta_path.is_file():
            raise UserError(sta_path, "file not found")
        checker = SegmentChecker(sta_path)
        for lineno, line in enumerate(sta_path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            head, sep, sentence = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3 or not sentence.strip():
                raise UserError(sta_path, f"line {lineno}: expected 'VID START END##sentence'")
            vid, start, end = parts
            if vid not in durations:
                checker.skip(vid, f"line {lineno}: no duration in the Charades CSV")
                continue
            segment = checker.check(vid, start, end, sentence.strip().rstrip("."), durations[vid])
            if segment is None:
                continue
            entry = videos.setdefault(vid, VideoEntry(None, durations[vid], None, subset, []))
            if entry.subset != subset:
                raise UserError(sta_path, f"line {lineno}: video {vid} is in both train and test")
            entry.segments.append(segment)
        skipped.extend(checker.skipped)
    if not videos:
        raise UserError(next(iter(sta_files.values())), "no usable queries")
    return Index("charades", videos, skipped)
