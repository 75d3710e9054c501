"""What precision `auto` picks on this machine, and why: the CPU's capability, its fp32 and bf16 matmul rates, and
the demo CLIP's frame rate in each precision.

    python -m benchmarks.bench_precision                 # this CPU as it is
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.bench_precision   # as an AVX2-only CPU

Rates are on one thread (the figure that compares across machines) and on every thread. The demo CLIP
(`grizal-demo`, random weights: speed does not depend on them) encodes a batch of 64 frames at 64 px; its frame
rate is also given as a share of the same thread's matmul rate in that precision.
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


def clip_frames_per_s(precision: str, batch: int = 64, seconds: float = 2.0) -> float:
    from grizal.encoders.clip import ClipSpec, load_clip

    clip = load_clip(ClipSpec(model="grizal-demo", precision=precision, device="cpu"))
    size = clip.preprocess_cfg["size"]
    size = size[0] if isinstance(size, list | tuple) else size
    frames = clip.to_device(torch.randn(batch, 3, size, size))
    with torch.inference_mode():
        clip.model.encode_image(frames)
        runs, start = 0, time.perf_counter()
        while runs < 2 or time.perf_counter() - start < seconds:
            clip.model.encode_image(frames)
            runs += 1
    return batch * runs / (time.perf_counter() - start)


def measure() -> dict:
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    figures: dict = {"cpu": cpu_description(), "capability": torch.backends.cpu.get_cpu_capability(),
                     "threads": threads}
    torch.set_num_threads(1)
    figures["one_thread"] = {name: matmul_gflops(name, size=512) for name in ("float32", "bfloat16")}
    figures["clip_frames_per_s"] = {p: clip_frames_per_s(p) for p in ("fp32", "bf16")}
    torch.set_num_threads(threads)
    figures["all_threads"] = {name: matmul_gflops(name, size=1024) for name in ("float32", "bfloat16")}
    figures["auto"] = {
        "extract.clip.precision": resolve_precision("auto", cpu),
        "extract.flow.autocast (RAFT)": "bf16" if resolve_precision("auto", cpu) == "bf16" else "none",
        "train.precision": resolve_precision("auto", cpu, cpu_bf16=False),
        "pretrain.precision": resolve_precision("auto", cpu, cpu_bf16=False),
    }
    return figures


def report(f: dict) -> str:
    one, every, clip = f["one_thread"], f["all_threads"], f["clip_frames_per_s"]
    slow = one["float32"] / one["bfloat16"]
    lines = [
        f"CPU: {f['cpu']}",
        "",
        "| | fp32 | bf16 | bf16 / fp32 |",
        "| --- | ---: | ---: | ---: |",
        f"| matmul 512², 1 thread (GFLOP/s) | {one['float32']:.1f} | {one['bfloat16']:.1f} | {1 / slow:.3g} |",
        f"| matmul 1024², {f['threads']} threads (GFLOP/s) | {every['float32']:.1f} | {every['bfloat16']:.1f} | "
        f"{every['bfloat16'] / every['float32']:.3g} |",
        f"| demo CLIP, 64 frames at 64 px, 1 thread (frames/s) | {clip['fp32']:.0f} | {clip['bf16']:.0f} | "
        f"{clip['bf16'] / clip['fp32']:.3g} |",
        f"| the same per matmul GFLOP/s of its precision | {clip['fp32'] / one['float32']:.1f} | "
        f"{clip['bf16'] / one['bfloat16']:.1f} | |",
        "",
        "auto picks: " + "; ".join(f"{key} -> {value}" for key, value in f["auto"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = measure()
    print(report(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
