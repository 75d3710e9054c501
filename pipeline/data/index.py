"""The canonical index: one record per video (path, duration, fps, subset, labelled segments)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common import UserError, read_json

SCHEMA = 1
SUBSETS = ("train", "test")


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str


@dataclass
class VideoEntry:
    path: str | None
    duration: float
    fps: float | None
    subset: str
    segments: list[Segment] = field(default_factory=list)

    def labels(self) -> set[str]:
        return {seg.label for seg in self.segments}


@dataclass
class Index:
    dataset: str
    videos: dict[str, VideoEntry]
    skipped: list[dict[str, str]] = field(default_factory=list)
    # Classes to localize that no annotation names (prepare.allow_empty: the unseen classes of unlabelled videos).
    unannotated: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted({seg.label for video in self.videos.values() for seg in video.segments} | set(self.unannotated))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "dataset": self.dataset,
            "classes": self.classes,
            "videos": {
                vid: {
                    "path": v.path,
                    "duration": v.duration,
                    "fps": v.fps if v.fps is not None and math.isfinite(v.fps) else None,  # never NaN in JSON
                    "subset": v.subset,
                    "segments": [{"start": s.start, "end": s.end, "label": s.label} for s in v.segments],
                }
                for vid, v in sorted(self.videos.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str | os.PathLike = "index") -> Index:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("videos"), dict):
            raise UserError(where, f"not a grizal index of schema {SCHEMA}")
        videos = {}
        for vid, v in data["videos"].items():
            segments = [Segment(float(s["start"]), float(s["end"]), str(s["label"])) for s in v["segments"]]
            videos[vid] = VideoEntry(v.get("path"), float(v["duration"]), v.get("fps"), v["subset"], segments)
        annotated = {seg.label for video in videos.values() for seg in video.segments}
        unannotated = sorted(set(data.get("classes") or []) - annotated)
        return cls(data.get("dataset", "unknown"), videos, unannotated=unannotated)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Index:
        return cls.from_json(read_json(path), path)


class SegmentChecker:
    """Validates segments against a video's duration, recording what it drops or clamps."""

    def __init__(self, source: str | os.PathLike):
        self.source = str(source)
        self.skipped: list[dict[str, str]] = []

    def skip(self, vid: str, reason: str) -> None:
        self.skipped.append({"file": self.source, "video": vid, "reason": reason})

    def check(self, vid: str, start: Any, end: Any, label: Any, duration: float) -> Segment | None:
        try:
            s, e = float(start), float(end)
        except (TypeError, ValueError):
            self.skip(vid, f"segment [{start}, {end}] is not numeric")
            return None
        if not (math.isfinite(s) and math.isfinite(e)):
            self.skip(vid, f"segment [{start}, {end}] is not finite")
            return None
        if not isinstance(label, str) or not label.strip():
            self.skip(vid, f"segment [{s}, {e}] has no label")
            return None
        if s < 0:
            self.skip(vid, f"segment [{s}, {e}] of '{label}' starts before 0")
            return None
        if duration > 0 and e > duration:
            e = duration  # annotation tools round end times up; clamp to the video
        if s >= e:
            self.skip(vid, f"segment [{s}, {e}] of '{label}' is empty or reversed")
            return None
        return Segment(round(s, 3), round(e, 3), label.strip())


def parse_segments(checker: SegmentChecker, vid: str, annotations: Any, duration: float) -> list[Segment]:
    """The usable segments of a video's ``[{"segment": [s, e], "label"}]`` list; the rest is recorded as skipped."""
    segments: list[Segment] = []
    if annotations is not None and not isinstance(annotations, list):
        checker.skip(vid, f"annotations is {type(annotations).__name__} {_short(annotations)}, not a list")
        return segments
    for ann in annotations:
        seg = ann.get("segment") if isinstance(ann, dict) else None
        if not isinstance(seg, list | tuple) or len(seg) != 2:
            checker.skip(vid, f"annotation {ann!r} has no [start, end] segment")
            continue
        checked = checker.check(vid, seg[0], seg[1], ann.get("label"), duration)
        if checked:
            segments.append(checked)
    return segments


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, int | float | str | bool) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check_fps(source: str | os.PathLike, vid: str, value: Any) -> float | None:
    """A video's frame rate as given (None when not given); anything but a positive finite number is an error."""
    if value is None:
        return None
    try:
        fps = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else math.nan
    except ValueError:
        fps = math.nan
    if not math.isfinite(fps) or fps <= 0:
        raise UserError(source, f"video {vid}: fps {_short(value)} is not a positive number (frames per second, "
                                "or leave it out)")
    return fps


def check_duration(source: str | os.PathLike, vid: str, value: Any) -> float:
    try:
        duration = float(value)
    except (TypeError, ValueError):
        what = "has no duration" if value is None else f"duration {value!r} is not a number"
        raise UserError(source, f"video {vid}: {what}; give each video its length in seconds (\"duration\": 31.2 in "
                                "ActivityNet format)") from None
    if not math.isfinite(duration) or duration <= 0:
        raise UserError(source, f"video {vid}: duration {value!r} must be positive")
    return duration


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


def find_video(video_dir: str | os.PathLike | None, vid: str) -> Path | None:
    """The file of video ``vid`` in ``video_dir`` (any common container), or None."""
    return locate_video(video_dir, vid)[0] if video_dir is not None else None


def locate_video(video_dir: str | os.PathLike, vid: str) -> tuple[Path | None, str]:
    """(the file of video ``vid`` in ``video_dir``, "") or (None, why not).

    An id never leads out of ``video_dir`` ('../x', an absolute path): the folder is what the user chose to
    read from. A file the user linked into the folder is read wherever it points to."""
    root = Path(video_dir)
    problems = []
    for name in dict.fromkeys((vid, vid.removeprefix("v_"), f"v_{vid}")):
        for ext in VIDEO_EXTENSIONS:
            candidate = root / f"{name}{ext}"
            if not _stays_inside(root, candidate):
                return None, f"video id {vid!r} points outside {video_dir}"
            if candidate.is_file():
                return candidate, ""
            if candidate.is_symlink():
                problems.append(f"{candidate} is a broken link (to {os.readlink(candidate)})")
            elif candidate.is_dir():
                problems.append(f"{candidate} is a folder, not a video file")
    return None, problems[0] if problems else f"no video file in {video_dir}"


def _stays_inside(root: Path, path: Path) -> bool:
    inside = os.path.normpath(os.path.abspath(root))
    target = os.path.normpath(os.path.abspath(path))
    return os.path.commonpath([inside, target]) == inside and target != inside


def attach_videos(index: Index, video_dir: str | os.PathLike | None, source: str | os.PathLike) -> None:
    """Fill each video's path from ``video_dir``; a listed video missing on disk is skipped and reported.

    With no ``video_dir`` the paths stay null: features can still come from an import.
    """
    if video_dir is None:
        return
    if not Path(video_dir).is_dir():
        raise UserError(video_dir, "video folder not found (prepare.video_dir)")
    files = [p for p in Path(video_dir).iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS]
    if not files:
        raise UserError(video_dir, f"0 videos found (no {'/'.join(VIDEO_EXTENSIONS)} files in the video folder)")
    listed = len(index.videos)
    for vid in list(index.videos):
        path, reason = locate_video(video_dir, vid)
        if path is None:
            index.skipped.append({"file": str(source), "video": vid, "reason": reason})
            del index.videos[vid]
        else:
            index.videos[vid].path = str(path)
    if listed and not index.videos:
        example = index.skipped[-1]["video"]
        raise UserError(video_dir, f"none of the {listed} annotated videos is in this folder of {len(files)} videos "
                                   f"(e.g. no {example}.mp4)")
