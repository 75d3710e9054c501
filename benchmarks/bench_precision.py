"""What precision `auto` picks on this machine, and why: the device's capability, its fp32 and bf16 matmul rates,
and the frozen encoders' rates in each precision.

    python -m benchmarks.bench_precision                 # this CPU as it is
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.bench_precision   # as an AVX2-only CPU
    python -m benchmarks.bench_precision --device cuda --model ViT-B-32 --raft   # a GPU, the paper's encoders

On the CPU, rates are on one thread (the figure that compares across machines) and the matmul also on every
thread. CLIP (`grizal-demo` by default, random weights: speed does not depend on them) encodes a batch of 64
frames; `--raft` adds raft_small flow pairs/s with autocast none and bf16. Each encoder's rate is also given per
matmul GFLOP/s of its precision, so figures from different machines compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.machine import cpu_description, matmul_gflops
from grizal.precision import resolve_precision


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _per_second(fn, device: torch.device, items: int, seconds: float) -> float:
    fn()
    _sync(device)
    runs, start = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    _sync(device)
    return items * runs / (time.perf_counter() - start)


def device_matmul_gflops(dtype: torch.dtype, device: torch.device, size: int) -> float:
    if device.type == "cpu":
        return matmul_gflops(str(dtype).removeprefix("torch."), size=size, seconds=0.5)
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    return _per_second(lambda: a @ b, device, 2 * size**3, 1.0) / 1e9


def clip_frames_per_s(model: str, precision: str, device: torch.device, batch: int = 64) -> float:
    from grizal.encoders.clip import ClipSpec, load_clip

    clip = load_clip(ClipSpec(model=model, precision=precision, device=str(device)))
    size = clip.preprocess_cfg["size"]
    size = size[0] if isinstance(size, list | tuple) else size
    frames = clip.to_device(torch.randn(batch, 3, size, size))
    with torch.inference_mode():
        return _per_second(lambda: clip.model.encode_image(frames), device, batch, 2.0)


def raft_pairs_per_s(autocast: str, device: torch.device, batch: int = 8, side: int = 256) -> float:
    from grizal.encoders.flow import FlowSpec, load_flow

    flow = load_flow(FlowSpec(method="raft_small", raft_weights=None, autocast=autocast, device=str(device),
                              max_side=side))
    frames = torch.randint(0, 255, (batch, 3, side, side), dtype=torch.uint8)
    return _per_second(lambda: flow(frames, frames), device, batch, 2.0)


def measure(device: torch.device, model: str, raft: bool) -> dict:
    threads = torch.get_num_threads()
    where = cpu_description() if device.type == "cpu" else f"{device} {torch.cuda.get_device_name(device)}"
    figures: dict = {"device": where, "threads": threads, "model": model}
    if device.type == "cpu":
        torch.set_num_threads(1)
    size = 512 if device.type == "cpu" else 8192
    figures["matmul_gflops"] = {p: device_matmul_gflops(d, device, size)
                                for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    figures["clip_frames_per_s"] = {p: clip_frames_per_s(model, p, device) for p in ("fp32", "bf16")}
    if raft:
        figures["raft_small_pairs_per_s"] = {a: raft_pairs_per_s(a, device) for a in ("none", "bf16")}
    torch.set_num_threads(threads)
    if device.type == "cpu":
        figures["all_threads_matmul_gflops"] = {p: matmul_gflops(n, size=1024)
                                                for p, n in (("fp32", "float32"), ("bf16", "bfloat16"))}
    clip_auto = resolve_precision("auto", device)
    figures["auto"] = {
        "extract.clip.precision": clip_auto,
        "extract.flow.autocast (RAFT)": "bf16" if clip_auto == "bf16" else "none",
        "train.precision": resolve_precision("auto", device, cpu_bf16=False),
        "pretrain.precision (CPU only)": resolve_precision("auto", torch.device("cpu"), cpu_bf16=False),
    }
    return figures


def report(f: dict) -> str:
    mm, clip = f["matmul_gflops"], f["clip_frames_per_s"]
    one = "1 thread" if f["device"].startswith(("CPU", "AMD", "Intel")) or "kernels" in f["device"] else "GPU"
    lines = [
        f"device: {f['device']}",
        "",
        "| | fp32 | bf16 | bf16 / fp32 |",
        "| --- | ---: | ---: | ---: |",
        f"| matmul ({one}, GFLOP/s) | {mm['fp32']:.1f} | {mm['bf16']:.1f} | {mm['bf16'] / mm['fp32']:.3g} |",
    ]
    if "all_threads_matmul_gflops" in f:
        every = f["all_threads_matmul_gflops"]
        lines.append(f"| matmul 1024², {f['threads']} threads (GFLOP/s) | {every['fp32']:.1f} | {every['bf16']:.1f} | "
                     f"{every['bf16'] / every['fp32']:.3g} |")
    lines += [
        f"| CLIP {f['model']}, batch 64 ({one}, frames/s) | {clip['fp32']:.1f} | {clip['bf16']:.1f} | "
        f"{clip['bf16'] / clip['fp32']:.3g} |",
        f"| the same per matmul GFLOP/s of its precision | {clip['fp32'] / mm['fp32']:.3g} | "
        f"{clip['bf16'] / mm['bf16']:.3g} | |",
    ]
    if "raft_small_pairs_per_s" in f:
        raft = f["raft_small_pairs_per_s"]
        lines.append(f"| raft_small 256², batch 8, autocast none / bf16 (pairs/s) | {raft['none']:.1f} | "
                     f"{raft['bf16']:.1f} | {raft['bf16'] / raft['none']:.3g} |")
    lines += ["", "auto picks: " + "; ".join(f"{key} -> {value}" for key, value in f["auto"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--model", default="grizal-demo", help="the open_clip model to time (random weights)")
    parser.add_argument("--raft", action="store_true", help="also time raft_small (random weights)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: no CUDA GPU here", file=sys.stderr)
        return 2
    figures = measure(device, args.model, args.raft)
    print(report(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
