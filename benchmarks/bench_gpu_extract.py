"""The GPU extraction path: CLIP frames/s (model cast to bf16), RAFT pairs/s (bf16 autocast) and the share of
time the encoders wait on decoding, each beside the machine's own limit measured in the same run.

    python -m benchmarks.bench_gpu_extract                  # on CUDA when there is one
    python -m benchmarks.bench_gpu_extract --device cpu --small   # the same code path, small, on the CPU

The limit is a large square matrix multiply (bf16 and fp32 GFLOP/s); a model's share of it is its FLOPs per
image or pair (counted by torch's FlopCounterMode) times its rate. The decode wait comes from the engine itself
(`ExtractionStats`) extracting rgb + RAFT flow of rendered demo-world videos. Random weights throughout (nothing
is downloaded; speed does not depend on the weights' values). Prints rows in the README's benchmark table format.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_extract import rate, vit_b32
from grizal.encoders import FlowSpec, load_flow
from pipeline.features.engine import Extractors, VideoJob, run_extraction


@dataclass(frozen=True)
class Sizes:
    matmul: int
    clip_batch: int
    raft: str
    raft_size: tuple[int, int]  # width, height
    raft_batch: int
    raft_updates: int
    videos: int
    video_seconds: float
    video_side: int
    flow_max_side: int


FULL = Sizes(matmul=8192, clip_batch=256, raft="raft_large", raft_size=(448, 256), raft_batch=16, raft_updates=12,
             videos=8, video_seconds=30, video_side=256, flow_max_side=256)
SMALL = Sizes(matmul=2048, clip_batch=16, raft="raft_small", raft_size=(128, 128), raft_batch=2, raft_updates=4,
              videos=2, video_seconds=6, video_side=128, flow_max_side=128)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_of(fn, device: str, repeat: int) -> float:
    """Best wall time of `repeat` calls after one warm-up call (kernel selection, cuDNN autotuning)."""
    fn()
    synchronize(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(n: int, dtype: torch.dtype, device: str, repeat: int) -> float:
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 / best_of(lambda: a @ b, device, repeat) / 1e9


def flops_of(fn) -> int:
    # nn.MultiheadAttention's inference fast path is one fused op that the counter does not see.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops()


def bench_clip(sizes: Sizes, device: str, repeat: int) -> dict:
    """ViT-B-32 cast to bf16, fed uint8 (S, S, 3) images the way the engine feeds it (`encode_prepared`)."""
    clip = vit_b32("bf16", device)
    side = clip.preprocess_cfg["size"]
    side = side if isinstance(side, int) else side[0]
    pixels = np.random.default_rng(0).integers(0, 255, (sizes.clip_batch, side, side, 3), dtype=np.uint8)
    seconds = best_of(lambda: clip.encode_prepared(pixels), device, repeat)
    flops = flops_of(lambda: clip.encode_prepared(pixels[:1]))
    return {"model": "ViT-B-32 bf16-cast", "batch": sizes.clip_batch, "frames_per_s": rate(sizes.clip_batch, seconds),
            "gflop_per_frame": round(flops / 1e9, 2)}


def bench_raft(sizes: Sizes, device: str, repeat: int) -> dict:
    flow = load_flow(FlowSpec(method=sizes.raft, raft_weights=None, num_flow_updates=sizes.raft_updates,
                              autocast="bf16", device=device))
    width, height = sizes.raft_size
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (sizes.raft_batch + 1, 3, height, width),
                                                                dtype=np.uint8))
    seconds = best_of(lambda: flow(frames[:-1], frames[1:]), device, repeat)
    flops = flops_of(lambda: flow(frames[:1], frames[1:2]))
    return {"model": f"{sizes.raft} bf16 autocast", "size": f"{width}x{height}", "updates": sizes.raft_updates,
            "batch": sizes.raft_batch, "pairs_per_s": rate(sizes.raft_batch, seconds),
            "gflop_per_pair": round(flops / 1e9, 2)}


def render_demo_videos(folder: Path, sizes: Sizes) -> list[Path]:
    from pipeline.data.demo import DemoConfig, make_video

    cfg = DemoConfig(seed=0, size=sizes.video_side, fps=10, min_duration=sizes.video_seconds,
                     max_duration=sizes.video_seconds, second_class_prob=0.0)
    return [folder / f"{make_video(folder, cfg, 'testing', n)[0]}.mp4" for n in range(sizes.videos)]


def bench_engine(videos: list[Path], sizes: Sizes, device: str, decode_workers: int) -> dict:
    """rgb (ViT-B-32 bf16) + RAFT flow of whole videos through `run_extraction`, as the extract stage runs it."""
    flow = load_flow(FlowSpec(method=sizes.raft, raft_weights=None, num_flow_updates=sizes.raft_updates,
                              autocast="bf16", max_side=sizes.flow_max_side, device=device))
    ex = Extractors(clip=vit_b32("bf16", device), kinds=("rgb", "flow"), flow=flow, sample_fps=5.0,
                    clip_batch_size=sizes.clip_batch, flow_batch_size=sizes.raft_batch, wheel_max_magnitude=8.0,
                    decode_workers=decode_workers)
    failures: list[str] = []
    stats = run_extraction([VideoJob(p.stem, p) for p in videos], ex, lambda _: None,
                           lambda job, reason: failures.append(f"{job.video_id}: {reason}"))
    if failures:
        raise RuntimeError(failures)
    return {**{k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(stats).items()},
            "decode_wait_share": round(stats.decode_wait_share, 3), "decode_workers": decode_workers,
            "video": f"{sizes.video_side}x{sizes.video_side}, 10 fps, {sizes.video_seconds:g} s, sampled at 5 fps"}


def table(figures: dict, command: str) -> list[str]:
    """The README's benchmark rows: | what | figure | command |."""
    where = figures["device_name"]
    bf16, fp32 = figures["limit"]["bf16_gflops"], figures["limit"]["fp32_gflops"]
    clip, raft, engine = figures["clip"], figures["raft"], figures["engine"]

    def share(per_s: float, gflop: float) -> str:
        return f"{per_s * gflop / bf16:.0%} of the bf16 matmul limit"

    return [
        f"| {where}: matmul limit, {figures['limit']['n']}² | bf16 {bf16:,.0f} GFLOP/s; fp32 {fp32:,.0f} GFLOP/s "
        f"| `{command}` |",
        f"| {where}: CLIP {clip['model']}, batch {clip['batch']} | {clip['frames_per_s']:,} frames/s "
        f"({clip['gflop_per_frame']} GFLOP each: {share(clip['frames_per_s'], clip['gflop_per_frame'])}) | same |",
        f"| {where}: {raft['model']}, {raft['size']}, {raft['updates']} updates, batch {raft['batch']} "
        f"| {raft['pairs_per_s']:,} pairs/s ({raft['gflop_per_pair']} GFLOP each: "
        f"{share(raft['pairs_per_s'], raft['gflop_per_pair'])}) | same |",
        f"| {where}: whole extraction, rgb + {raft['model'].split()[0]} flow of {engine['videos']} demo videos "
        f"({engine['video']}), {engine['decode_workers']} decode threads | {engine['frames']} frames + "
        f"{engine['pairs']} pairs in {engine['wall_s']:.1f} s; encoders busy "
        f"{engine['encode_s'] / engine['wall_s']:.0%}, **waiting on decoding {engine['decode_wait_share']:.1%}** "
        "| same |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="small sizes (the CPU smoke run)")
    parser.add_argument("--decode-workers", type=int, default=Extractors.decode_workers)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    device, sizes = args.device, (SMALL if args.small else FULL)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: no CUDA device here (use --device cpu)")
    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    figures: dict = {"device": device, "device_name": name, "torch": torch.__version__, "sizes": asdict(sizes),
                     "load_average_at_start": os.getloadavg()}

    def limit(before: dict | None = None) -> dict:
        """Measured before and after the models; the better of the two counts (a loaded CPU reads low)."""
        out = {"n": sizes.matmul}
        for dtype, key in ((torch.bfloat16, "bf16_gflops"), (torch.float32, "fp32_gflops")):
            measured = round(matmul_gflops(sizes.matmul, dtype, device, args.repeat), 1)
            out[key] = max(measured, (before or {}).get(key, 0))
        return out

    figures["limit"] = limit()
    print(f"limit: {json.dumps(figures['limit'])}", flush=True)
    figures["clip"] = bench_clip(sizes, device, args.repeat)
    print(f"clip: {json.dumps(figures['clip'])}", flush=True)
    figures["raft"] = bench_raft(sizes, device, args.repeat)
    print(f"raft: {json.dumps(figures['raft'])}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        videos = render_demo_videos(Path(tmp), sizes)
        figures["engine"] = bench_engine(videos, sizes, device, args.decode_workers)
    print(f"engine: {json.dumps(figures['engine'])}", flush=True)
    figures["limit"] = limit(figures["limit"])
    print(f"limit, best of before and after: {json.dumps(figures['limit'])}", flush=True)
    figures["load_average_at_end"] = os.getloadavg()
    print(f"load average: {figures['load_average_at_start']} -> {figures['load_average_at_end']}\n")
    command = "python -m benchmarks.bench_gpu_extract" + (f" --device {device}" if device == "cpu" else "") + (
        " --small" if args.small else "")
    print("\n".join(["| what | figure | command |", "| --- | --- | --- |", *table(figures, command)]))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
