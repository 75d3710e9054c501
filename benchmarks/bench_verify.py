"""What verifying a feature store costs: every extract run checks each stored video before counting it done
(`FeatureStoreWriter.current_ids`), and checks the whole store again at the end (`check_feature_store`).

Run: .venv/bin/python -m benchmarks.bench_verify [--videos 200 --frames 600 --dim 512] [--dir /path/on/the/disk]
Builds a store of --videos videos of (--frames, --dim) float32 features (defaults: a 2-minute video at 5 fps
through a ViT-B CLIP, 1.2 MB a video) in --dir (a temporary folder by default), then times, best of --repeats:
  raw read      every chunk file read into memory, nothing checked: this machine's own limit for the same bytes;
  crc32c        google_crc32c over the same bytes already in memory (what zarr's Crc32cCodec uses);
  verify        `FeatureStore.load_many` (size, crc32c, finite/magnitude, increasing timestamps; READ_THREADS
                threads): what `current_ids` runs per video ("1 thread": the same checks one video at a time);
  extract run   `current_ids`, then `check_feature_store` of what it did not verify: what an extract run with
                nothing to do spends on the store ("check re-reads": the final check reading every video again).
The page cache is warm (the store was just written and read once); a cold cache or a network file system adds
the device's read time to raw read and verify alike. Prints a markdown table naming the CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_name
from pipeline.features.store import (
    VIDEOS,
    FeatureStore,
    FeatureStoreWriter,
    check_feature_store,
    safe_key,
    settings_sha256,
)


def build(path: Path, videos: int, frames: int, dim: int) -> dict[str, str]:
    settings = {"kind": "rgb", "bench": True}
    attrs = {"kind": "rgb", "encoder": "bench", "weights_sha256": "-", "sample_fps": 5.0, "dim": dim, "T": 256,
             "settings": settings, "settings_sha256": settings_sha256(settings)}
    rng = np.random.default_rng(0)
    fingerprints = {}
    with FeatureStoreWriter(path, attrs) as writer:
        for i in range(videos):
            vid = f"video_{i:05d}"
            fingerprints[vid] = f"{i}:0"
            writer.write_video(vid, rng.normal(size=(frames, dim)).astype(np.float32), np.arange(frames) * 0.2 + 0.1,
                               {"duration": frames * 0.2, "source_fingerprint": fingerprints[vid]})
        writer.set_expected(fingerprints)
    return fingerprints


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_read(path: Path, ids: list[str]) -> list[bytes]:
    out = []
    for vid in ids:
        group = path / VIDEOS / safe_key(vid)
        out.append((group / "features" / "c" / "0" / "0").read_bytes())
        out.append((group / "timestamps" / "c" / "0").read_bytes())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the store (default: a temp folder)")
    args = parser.parse_args()
    import google_crc32c

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "rgb.zarr"
        fingerprints = build(path, args.videos, args.frames, args.dim)
        ids = sorted(fingerprints)
        megabytes = sum(f.stat().st_size for f in path.rglob("c/*") if f.is_file()) / 1e6
        megabytes += sum(f.stat().st_size for f in path.rglob("c/0/*") if f.is_file()) / 1e6
        raw_read(path, ids)  # warm the page cache
        store = FeatureStore(path)
        chunks = raw_read(path, ids)
        rows = {
            "raw read": best_of(args.repeats, lambda: raw_read(path, ids)),
            "crc32c": best_of(args.repeats, lambda: [google_crc32c.value(c) for c in chunks]),
            "verify, 1 thread": best_of(args.repeats, lambda: [store.load(v) for v in ids]),
            "verify": best_of(args.repeats, lambda: store.load_many(ids)),
        }
        writer = FeatureStoreWriter(path, dict(store.attrs))
        try:
            assert writer.current_ids(fingerprints) == set(ids)
            rows["extract run, check re-reads"] = best_of(args.repeats, lambda: (
                writer.current_ids(fingerprints), check_feature_store(path, ids)))
            rows["extract run"] = best_of(args.repeats, lambda: check_feature_store(
                path, ids, verified=writer.current_ids(fingerprints)))
        finally:
            writer.close()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); {args.videos} videos of ({args.frames}, "
          f"{args.dim}) float32, {megabytes:.0f} MB of chunks; warm page cache; best of {args.repeats}\n")
    print("| step | total s | ms per video | MB/s | x raw read |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.3f} | {1000 * seconds / args.videos:.2f} | {megabytes / seconds:,.0f} | "
              f"{seconds / rows['raw read']:.2f} |")


if __name__ == "__main__":
    main()
