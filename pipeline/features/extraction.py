"""Extracting features of many videos into one store per kind: resumable, shardable, with a failure budget.

``run_feature_extraction`` drives the engine (``pipeline.features.engine``) over a set of videos and writes
each video's features as it is done; ``index_videos`` and ``find_videos`` name the videos (from the prepare
index, or any folder). Used by the extract stage and by ``grizal localize``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.common import UserError, read_json
from pipeline.features.engine import Extractors, VideoFeatures, VideoJob, run_extraction
from pipeline.features.settings import store_attrs
from pipeline.features.store import CheckReport, FeatureStoreWriter, Shard, check_feature_store

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}

def source_fingerprint(path: Path) -> str | None:
    """Size and modification time of a video file: a changed file no longer counts as extracted."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def video_attrs(result: VideoFeatures) -> dict[str, Any]:
    s = result.summary
    return {"source": str(result.path), "source_fingerprint": source_fingerprint(result.path),
            "duration": s.duration, "duration_source": s.duration_source,
            "fps": s.fps, "width": s.width, "height": s.height, "rotation": s.rotation,
            "decoded_frames": s.decoded_frames}


def run_feature_extraction(
    videos: dict[str, Path], stores: dict[str, Path], ex: Extractors, T: int, *, shard: Shard, rebuild: bool,
    max_failure_fraction: float,
) -> dict[str, CheckReport | None]:
    """Extract `ex.kinds` for `videos` into one store per kind, skipping complete videos; returns the check
    report of each store (None when sharded: only the union of all shards can be checked)."""
    writers: dict[str, FeatureStoreWriter] = {}
    try:
        for kind in ex.kinds:  # each takes its store's writer lock: a second writer stops here, before any change
            writers[kind] = FeatureStoreWriter(stores[kind], store_attrs(kind, ex, T), rebuild=rebuild, shard=shard)
        return _extract(videos, writers, stores, ex, shard, max_failure_fraction)
    finally:
        for writer in writers.values():
            writer.close()


def _extract(videos: dict[str, Path], writers: dict[str, FeatureStoreWriter], stores: dict[str, Path],
             ex: Extractors, shard: Shard, max_failure_fraction: float) -> dict[str, CheckReport | None]:
    for writer in writers.values():
        writer.set_expected(videos)
    mine = shard.select(videos)
    fingerprints = {v: source_fingerprint(videos[v]) for v in mine}
    done = set.intersection(*(w.current_ids(fingerprints) for w in writers.values()))
    jobs = [VideoJob(v, videos[v]) for v in mine if v not in done]
    where = ", ".join(str(s) for s in stores.values() if s)
    print(f"{where}: encoder {ex.clip.name} ({ex.clip.weights}), {ex.clip.precision} on {ex.clip.device}"
          + (f", flow {ex.flow.spec.method}" if "flow" in ex.kinds else ""))
    print(f"{where}: {len(mine)} video(s){f' in shard {shard.name}' if shard.name else ''}, "
          f"{len(mine) - len(jobs)} already complete, {len(jobs)} to extract ({', '.join(ex.kinds)})")
    failed: list[str] = []

    def on_done(result: VideoFeatures) -> None:
        for kind, (features, timestamps) in result.features.items():
            try:
                writers[kind].write_video(result.video_id, features, timestamps, video_attrs(result))
            except ValueError as err:
                on_failed(VideoJob(result.video_id, result.path), f"bad features: {err}")
                return

    def on_failed(job: VideoJob, reason: str) -> None:
        failed.append(job.video_id)
        for writer in writers.values():
            writer.failures.add(job.video_id, str(job.path), reason)
            writer.forget(job.video_id)
        tqdm.write(f"failed: {job.video_id} ({job.path}): {reason}", file=sys.stderr)

    with tqdm(total=len(jobs), unit="video", file=sys.stderr, mininterval=2, disable=not jobs) as bar:
        stats = run_extraction(jobs, ex, on_done, on_failed, on_progress=bar.update)
    if jobs:
        print(f"{where}: {stats.summary()}")
    reports: dict[str, CheckReport | None] = {}
    for kind, writer in writers.items():
        if shard.count > 1:
            reports[kind] = None
            fraction = len(failed) / max(1, len(mine))
            if fraction > max_failure_fraction:
                raise SystemExit(too_many_failures(writer.path, len(failed), len(mine), max_failure_fraction))
            continue
        # `done` was read and verified at the start of this run: only what this run wrote is read back.
        report = check_feature_store(writer.path, sorted(videos), verified=done)
        print(report.summary())
        reports[kind] = report
    for report in reports.values():
        if report is not None and not report.ok(max_failure_fraction):
            raise SystemExit(report_failure(report, max_failure_fraction))
    return reports


def too_many_failures(path: Path, failed: int, total: int, limit: float) -> str:
    return (f"error: {path}: {failed} of {total} videos failed ({failed / max(1, total):.1%}), more than "
            f"max_failure_fraction {limit:.1%}; reasons in {path}/failures*.jsonl")


def report_failure(report: CheckReport, limit: float) -> str:
    if report.missing:
        return f"error: {report.path}: {len(report.missing)} video(s) not extracted, e.g. {report.missing[:3]}"
    if report.invalid:
        video_id, problem = next(iter(report.invalid.items()))
        return f"error: {report.path}: {len(report.invalid)} invalid video(s), e.g. {video_id}: {problem}"
    return too_many_failures(report.path, len(report.failed), len(report.expected), limit)


def index_videos(index_path: Path) -> dict[str, Path]:
    """Video id -> file from the canonical index; ids without a path (imported features) are left out."""
    index = read_json(index_path)
    videos = index.get("videos") if isinstance(index, dict) else None
    if not isinstance(videos, dict):
        raise UserError(index_path, "expected an object with a 'videos' mapping")
    out = {}
    for video_id, entry in videos.items():
        path = entry.get("path") if isinstance(entry, dict) else None
        if path:
            out[str(video_id)] = Path(path)
    return out


def index_costs(index_path: Path) -> dict[str, float | None]:
    """Video id -> decode cost (duration x frame rate: about the frames PyAV decodes) from the canonical index;
    None when the index does not know both (the shards then count the video at the median cost)."""
    out: dict[str, float | None] = {}
    for video_id, entry in read_json(index_path).get("videos", {}).items():
        duration, fps = (entry.get("duration"), entry.get("fps")) if isinstance(entry, dict) else (None, None)
        numbers = all(isinstance(x, int | float) and not isinstance(x, bool) and x > 0 for x in (duration, fps))
        out[str(video_id)] = float(duration) * float(fps) if numbers else None
    return out


def find_videos(root: Path) -> dict[str, Path]:
    """Video files under `root` (or `root` itself), by id = path relative to `root` without its suffix."""
    if root.is_file():
        return {root.stem: root}
    if not root.is_dir():
        raise UserError(root, "no such file or directory")
    videos: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        # A broken link or a folder named like a video stays in: its extraction fails and is recorded, with why.
        if path.suffix.lower() in VIDEO_SUFFIXES and (path.is_file() or path.is_dir() or path.is_symlink()):
            video_id = path.relative_to(root).with_suffix("").as_posix()
            if video_id in videos:
                raise UserError(path, f"same video id '{video_id}' as {videos[video_id]}; rename one of them")
            videos[video_id] = path
    if not videos:
        raise UserError(root, f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return videos
