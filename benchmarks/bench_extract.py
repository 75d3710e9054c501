"""Extraction speed and memory on this machine: decoding, CLIP ViT-B-32 fp32 vs bf16, the batched engine,
RAFT with and without bf16 autocast, bulk store reads, and peak RSS for a long video.

    .venv/bin/python -m benchmarks.bench_extract            # about 2-3 minutes on 2 idle cores
    .venv/bin/python -m benchmarks.bench_extract --quick    # smaller everything

All models have random weights (nothing is downloaded); speed does not depend on the weights' values.
On a shared machine the figures move with the other processes' load: run it twice and read the better run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import open_clip
import torch

from grizal.encoders import ClipEncoder, ClipSpec, FlowSpec, load_flow
from grizal.encoders.clip import seeded_init
from pipeline.features.engine import Extractors, VideoJob, run_extraction
from pipeline.features.video import VideoReader

REPO = Path(__file__).resolve().parents[1]


def synthetic_video(path: Path, seconds: float, fps: int, width: int, height: int) -> Path:
    """Moving textured frames (so the encoder has real motion to compress)."""
    y, x = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.stack([(x * 3 + i * 2) % 256, (y * 2 + i) % 256, ((x + y + i * 4) // 16 % 2) * 200], -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode())
    return path


def rate(count: int, seconds: float) -> float:
    return round(count / max(seconds, 1e-9), 1)


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_decode(video: Path, clip: ClipEncoder) -> dict:
    decoded = []
    seconds = timed(lambda: decoded.append(sum(1 for _ in VideoReader(video, None).frames())))
    frames = decoded[0]
    # What the decode thread does per sampled frame: decode, RGB conversion, the CLIP resize and crop.
    with_pre = timed(lambda: [clip.prepare(f.image) for f in VideoReader(video, None).frames()])
    return {"frames": frames, "size": "320x240", "decode_fps": rate(frames, seconds),
            "decode_resize_crop_fps": rate(frames, with_pre)}


def vit_b32(precision: str, device: str, base: torch.nn.Module | None = None) -> ClipEncoder:
    model = base if base is not None else seeded_init(0, lambda: open_clip.create_model("ViT-B-32", pretrained=None))
    spec = ClipSpec(model="ViT-B-32", precision=precision, device=device)
    return ClipEncoder(copy.deepcopy(model), spec, "random-init seed 0", "not computed")


def bench_clip(video: Path, batch: int, threads: list[int], device: str) -> dict:
    base = seeded_init(0, lambda: open_clip.create_model("ViT-B-32", pretrained=None))
    fp32 = vit_b32("fp32", device, base)
    frames = [fp32.preprocess(f.image) for f in VideoReader(video, 8).frames()]
    pixels = torch.stack((frames * (batch // len(frames) + 1))[:batch])
    out: dict = {"batch": batch}
    precisions = ["fp32", "bf16"] + (["fp16"] if device.startswith("cuda") else [])
    encoders = {p: (fp32 if p == "fp32" else vit_b32(p, device, base)) for p in precisions}
    for n in threads:
        torch.set_num_threads(n)
        for precision, encoder in encoders.items():
            encoder.encode_images(pixels[:8])  # warm-up (kernel selection)
            out[f"{precision}_fps_{n}_threads"] = rate(batch, timed(lambda e=encoder: e.encode_images(pixels), 2))
    a, b = encoders["fp32"].encode_images(pixels), encoders["bf16"].encode_images(pixels)
    out["bf16_vs_fp32_min_cosine"] = round(float(torch.nn.functional.cosine_similarity(a, b).min()), 5)
    return out


def bench_engine(videos: list[Path], sample_fps: float, batch: int, device: str) -> dict:
    """The whole rgb path (decode thread, preprocessing, cross-video batches, bf16 ViT-B-32)."""
    ex = Extractors(clip=vit_b32("bf16", device), kinds=("rgb",), sample_fps=sample_fps, clip_batch_size=batch)
    count = [0]
    failures: list[str] = []
    jobs = [VideoJob(p.stem, p) for p in videos]

    def count_rows(result) -> None:
        count[0] += len(result.features["rgb"][1])

    seconds = timed(lambda: run_extraction(jobs, ex, count_rows, lambda job, reason: failures.append(reason)))
    if failures:
        raise RuntimeError(failures)
    return {"videos": len(videos), "frames": count[0], "engine_rgb_fps": rate(count[0], seconds)}


def bench_demo_flow(videos: list[Path]) -> dict:
    """The demo world's flow path: grizal-tiny + DIS at 64 px on 128 px videos, two decode threads."""
    from grizal.encoders import load_clip

    ex = Extractors(clip=load_clip(ClipSpec(model="grizal-tiny")), kinds=("rgb", "flow"),
                    flow=load_flow(FlowSpec(method="dis", max_side=64)), sample_fps=5)
    count = {"rgb": 0, "flow": 0}

    def count_rows(result) -> None:
        for kind in count:
            count[kind] += len(result.features[kind][1])

    seconds = timed(lambda: run_extraction([VideoJob(p.stem, p) for p in videos], ex, count_rows, print))
    return {"videos": len(videos), "rgb_frames": count["rgb"], "flow_pairs": count["flow"],
            "rgb_plus_flow_items_per_s": rate(count["rgb"] + count["flow"], seconds)}


def bench_raft(pairs: int, width: int, height: int, updates: int, device: str) -> dict:
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 255, (pairs + 1, 3, height, width), dtype=np.uint8))
    out: dict = {"pairs": pairs, "size": f"{width}x{height}", "num_flow_updates": updates}
    for name in ("raft_small", "raft_large"):
        for autocast in ("none", "bf16"):
            flow = load_flow(FlowSpec(method=name, num_flow_updates=updates, autocast=autocast, device=device))
            flow(frames[:1], frames[1:2])  # warm-up
            seconds = timed(lambda f=flow: f(frames[:-1], frames[1:]), 2)
            out[f"{name}_{autocast}_pairs_per_s"] = rate(pairs, seconds)
    return out


def bench_store_read(tmp: Path, videos: int, frames: int, dim: int) -> dict:
    import zarr

    from pipeline.features.store import FeatureStoreWriter, open_store, settings_sha256

    settings = {"kind": "rgb", "bench": True}
    attrs = {"kind": "rgb", "dim": dim, "T": 100, "settings": settings, "settings_sha256": settings_sha256(settings)}
    writer = FeatureStoreWriter(tmp / "read.zarr", attrs)
    rng = np.random.default_rng(0)
    ids = [f"video_{i:05d}" for i in range(videos)]
    for vid in ids:
        writer.write_video(vid, rng.normal(size=(frames, dim)).astype(np.float32), np.arange(frames) / 5.0, {})
    store = open_store(tmp / "read.zarr")
    bulk = timed(lambda: store.read_videos(ids), 2)
    root = zarr.open_group(tmp / "read.zarr", mode="r")
    one_by_one = timed(lambda: [(root[f"videos/{v}/features"][:], root[f"videos/{v}/timestamps"][:]) for v in ids])
    listing = timed(store.complete_ids)
    return {"videos": videos, "frames_x_dim": f"{frames}x{dim}", "bulk_read_videos_per_s": rate(videos, bulk),
            "one_by_one_videos_per_s": rate(videos, one_by_one), "complete_ids_s": round(listing, 3)}


PEAK_RSS_CHILD = """
import sys, json
from pipeline.features.settings import extract_config, build_extractors
from pipeline.features.engine import extract_video
params = {"extract": {"device": "cpu", "clip": {"model": "grizal-tiny", "pretrained": None, "batch_size": 64},
                      "frames": {"sample_fps": 2}, "flow": {"method": "farneback", "max_side": 128}}}
ex = build_extractors(extract_config(params), ("rgb", "flow"), "bench")
result = extract_video(sys.argv[1], ex)
# VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork + exec.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"rows": len(result.features["rgb"][1]), "duration_s": result.summary.duration,
                  "peak_rss_mb": round(peak / 1024, 1)}))
"""


def bench_memory(tmp: Path, minutes: list[float]) -> dict:
    """Peak RSS of one process extracting rgb + flow of one video, for short and long videos."""
    out = {}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for m in minutes:
        video = synthetic_video(tmp / f"long_{m}.mp4", m * 60, fps=10, width=320, height=240)
        child = subprocess.run([sys.executable, "-c", PEAK_RSS_CHILD, str(video)], capture_output=True, text=True,
                               env=env, check=True)
        out[f"{m:g}_min"] = json.loads(child.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    quick = args.quick
    figures: dict = {"machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, device {args.device}",
                     "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        video = synthetic_video(tmp / "v.mp4", 10 if quick else 20, fps=30, width=320, height=240)
        cores = os.cpu_count() or 1
        steps = [
            ("decode", lambda: bench_decode(video, vit_b32("fp32", "cpu"))),
            ("clip_vit_b32", lambda: bench_clip(video, 32 if quick else 64, sorted({1, cores}), args.device)),
            ("engine", lambda: bench_engine(
                [synthetic_video(tmp / f"e{i}.mp4", 10, 30, 320, 240) for i in range(2 if quick else 4)],
                sample_fps=8, batch=32 if quick else 64, device=args.device)),
            ("demo_flow", lambda: bench_demo_flow(
                [synthetic_video(tmp / f"d{i}.mp4", 30, 10, 128, 128) for i in range(2 if quick else 6)])),
            ("raft", lambda: bench_raft(2 if quick else 4, 128 if quick else 256, 128 if quick else 192,
                                        6 if quick else 12, args.device)),
            ("store_read", lambda: bench_store_read(tmp, 100 if quick else 500, 150, 512)),
            ("memory", lambda: bench_memory(tmp, [1, 10] if quick else [1, 60])),
        ]
        for name, step in steps:
            start = time.perf_counter()
            figures[name] = step()
            figures[name]["bench_seconds"] = round(time.perf_counter() - start, 1)
            torch.set_num_threads(cores)
            print(f"{name}: {json.dumps(figures[name])}", flush=True)
    figures["load_average_at_end"] = os.getloadavg()
    print(f"load average: {figures['load_average_at_start']} -> {figures['load_average_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"this process peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
