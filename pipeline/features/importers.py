"""Import features someone already extracted (STALE/ActionFormer-style `.npy` per video, or one HDF5 file)
into a grizal feature store, so the trainer reads them like extracted ones.

    python -m pipeline.extract import --format npy features/ --out cache/features/rgb.zarr --kind rgb \
        --fps 30 --stride 4 --window 16 [--columns 0:1024]
    python -m pipeline.extract import --format hdf5 feats.h5 --out cache/features/rgb.zarr --index index.json

Timestamps come from the source (an HDF5 group's `timestamps`), from the frame rate and stride the features
were computed with (feature i covers frames [i * stride, i * stride + window), stamped at its centre), or,
with --index, from spreading each video's N features evenly over its duration (centres (i + 0.5) * d / N).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import typer
from tqdm import tqdm

from pipeline.common import UserError, exit_on_user_error, read_json
from pipeline.features.store import FRAME_KINDS, FeatureStoreWriter, check_feature_store, settings_sha256

FORMATS = ("npy", "hdf5")


def parse_columns(text: str | None) -> slice | None:
    if not text:
        return None
    try:
        start, stop = (int(part) if part else None for part in text.split(":"))
    except ValueError:
        raise UserError("--columns", f"expected a:b (e.g. 0:1024), got '{text}'") from None
    return slice(start, stop)


def _sources(fmt: str, src: Path, stack: ExitStack) -> list[tuple[str, Any]]:
    """(video id, .npy path or HDF5 node) for every video in the source; HDF5 stays open until `stack` closes."""
    if fmt == "npy":
        if not src.is_dir():
            raise UserError(src, "--format npy expects a folder of <video id>.npy files")
        files = sorted(src.glob("*.npy"))
        if not files:
            raise UserError(src, "no .npy files")
        return [(path.stem, path) for path in files]
    if not src.is_file():
        raise UserError(src, "HDF5 file not found")
    import h5py

    try:
        handle = stack.enter_context(h5py.File(src, "r"))
    except OSError as err:
        raise UserError(src, f"not a readable HDF5 file ({err})") from None
    if not len(handle):
        raise UserError(src, "the HDF5 file holds no datasets")
    return [(key, handle[key]) for key in sorted(handle.keys())]


def _load(node: Any, columns: slice | None, transpose: bool) -> tuple[np.ndarray, np.ndarray | None]:
    import h5py

    timestamps = None
    if isinstance(node, Path):
        try:
            features = np.load(node, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ValueError(f"not a readable .npy array ({err})") from None
    elif isinstance(node, h5py.Group):
        if "features" not in node:
            raise ValueError("HDF5 group without a 'features' dataset")
        features = node["features"][()]
        timestamps = node["timestamps"][()] if "timestamps" in node else None
    else:
        features = node[()]
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"expected a 2-D (N, D) array, got shape {features.shape}")
    if transpose:
        features = features.T
    if columns is not None:
        features = features[:, columns]
    if features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(f"empty features, shape {features.shape}")
    return np.ascontiguousarray(features, dtype=np.float32), timestamps


def import_features(
    fmt: str, src: Path, out: Path, kind: str, *, fps: float | None, stride: float | None, window: float,
    index: Path | None, columns: slice | None, transpose: bool, T: int, rebuild: bool,
    max_failure_fraction: float,
) -> None:
    if fmt not in FORMATS:
        raise UserError("--format", f"use one of {', '.join(FORMATS)}, not '{fmt}'")
    if kind not in FRAME_KINDS:
        raise UserError("--kind", f"use one of {', '.join(FRAME_KINDS)}, not '{kind}'")
    if (fps is None) != (stride is None):
        raise UserError("--fps/--stride", "give both the source frame rate and the feature stride, or neither")
    if fps is not None and (fps <= 0 or stride <= 0 or window < 0):
        raise UserError("--fps/--stride", "frame rate and stride must be positive, window >= 0")
    durations: dict[str, float] = {}
    if index is not None:
        videos = read_json(index).get("videos", {})
        durations = {str(k): float(v["duration"]) for k, v in videos.items()
                     if isinstance(v, dict) and v.get("duration")}
    timing = ({"mode": "stride", "fps": fps, "stride": stride, "window": window} if fps is not None
              else {"mode": "uniform over the index duration"} if index is not None else {"mode": "source"})
    with ExitStack() as stack:
        entries = _sources(fmt, src, stack)
        _import_entries(entries, src, out, kind, fmt, fps, stride, window, durations, timing, columns, transpose,
                        T, rebuild, max_failure_fraction)


def _import_entries(entries: list[tuple[str, Any]], src: Path, out: Path, kind: str, fmt: str, fps: float | None,
                    stride: float | None, window: float, durations: dict[str, float], timing: dict[str, Any],
                    columns: slice | None, transpose: bool, T: int, rebuild: bool, max_failure_fraction: float
                    ) -> None:
    dim, problems = None, []
    for video_id, node in entries:  # the store's width is that of the first readable video
        try:
            dim = _load(node, columns, transpose)[0].shape[1]
            break
        except ValueError as err:
            problems.append(f"{video_id}: {err}")
    if dim is None:
        raise UserError(src, f"no readable features ({problems[0]})")
    settings = {"kind": kind, "imported": {"format": fmt, "source": str(src.resolve()), "columns": str(columns),
                                           "transpose": transpose, "timing": timing}}
    attrs = {"kind": kind, "encoder": f"imported from {src.name}", "encoder_model": "imported",
             "encoder_weights": str(src), "weights_sha256": "unknown",
             "sample_fps": fps / stride if fps is not None else None, "dim": int(dim), "T": T,
             "settings": settings, "settings_sha256": settings_sha256(settings)}
    with FeatureStoreWriter(out, attrs, rebuild=rebuild) as writer:  # released even when it fails
        done = writer.complete_ids()
        seen: list[str] = []

        def stamps(video_id: str, n: int, own: np.ndarray | None) -> tuple[np.ndarray, float, str]:
            if timing["mode"] == "stride":
                ts = (np.arange(n) * stride + window / 2) / fps
                span = ((n - 1) * stride + max(window, stride)) / fps
                return ts, durations.get(video_id, span), "index" if video_id in durations else "features"
            if timing["mode"] != "source":
                if video_id not in durations:
                    raise ValueError("not in the index (or no duration there)")
                d = durations[video_id]
                return (np.arange(n) + 0.5) * d / n, d, "index"
            if own is None:
                raise ValueError("no timestamps in the source: give --fps/--stride or --index")
            own = np.asarray(own, dtype=np.float64).reshape(-1)
            if own.shape[0] != n:
                raise ValueError(f"{own.shape[0]} timestamps for {n} features")
            return own, durations.get(video_id, float(own[-1])), "index" if video_id in durations else "features"

        failed = 0
        for video_id, node in tqdm(entries, unit="video", file=sys.stderr, mininterval=2):
            seen.append(video_id)
            if video_id in done:
                continue
            try:
                features, own = _load(node, columns, transpose)
                timestamps, duration, source = stamps(video_id, features.shape[0], own)
                writer.write_video(video_id, features, timestamps, {"source": str(src), "duration": duration,
                                                                    "duration_source": source})
            except ValueError as err:
                failed += 1
                writer.failures.add(video_id, str(src), str(err))
        writer.set_expected(seen)
        report = check_feature_store(out, seen)
        print(report.summary())
        if not report.ok(max_failure_fraction):
            raise SystemExit(f"error: {out}: {failed} of {len(seen)} videos not imported; see {out}/failures.jsonl")


@exit_on_user_error
def import_command(
    src: Path = typer.Argument(..., help="folder of <id>.npy files, or one HDF5 file"),
    out: Path = typer.Option(..., "--out", help="the store to write, e.g. cache/features/rgb.zarr"),
    fmt: str = typer.Option(..., "--format", help="npy or hdf5"),
    kind: str = typer.Option("rgb", "--kind", help="rgb or flow"),
    fps: float = typer.Option(None, "--fps", help="frame rate of the video the features were computed on"),
    stride: float = typer.Option(None, "--stride", help="frames between consecutive features"),
    window: float = typer.Option(0.0, "--window", help="frames each feature covers (timestamp at its centre)"),
    index: Path = typer.Option(None, "--index", help="index.json: durations (and even spreading without --fps)"),
    columns: str = typer.Option(None, "--columns", help="a:b keeps those feature columns (e.g. 0:1024)"),
    transpose: bool = typer.Option(False, "--transpose", help="source arrays are (D, N)"),
    T: int = typer.Option(100, "--T", help="the model's default sequence length, recorded in the store"),
    rebuild: bool = typer.Option(False, "--rebuild", help="replace a store made from another source"),
    max_failure_fraction: float = typer.Option(0.0, "--max-failure-fraction"),
) -> None:
    """Import existing per-video features (.npy folder or HDF5 file) into a feature store."""
    import_features(fmt, src, out, kind, fps=fps, stride=stride, window=window, index=index,
                    columns=parse_columns(columns), transpose=transpose, T=T, rebuild=rebuild,
                    max_failure_fraction=max_failure_fraction)
