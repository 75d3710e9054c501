"""The one precision resolver: a precision from a config ('auto', 'fp32', 'bf16', 'fp16') -> the one to run.

'auto' picks bf16 only where the device runs it natively: a CUDA GPU with bf16 support, or a CPU whose kernels
torch dispatches at AVX-512 with AVX512-BF16 or AMX tiles (Intel Sapphire Rapids and later, AMD Zen 4 and later).
Everywhere else (AVX2-only CPUs: most laptops, AMD before Zen 4) a bf16 matmul is emulated and 20-90x slower than
fp32, so 'auto' is fp32 there. fp16 is never picked on a CPU. An explicit 'bf16' is honoured on any device;
`emulated_bf16_warning` says when that will be slow and by how much.

Library code raises ``PrecisionError`` (a ``ValueError``); the pipeline turns it into its one-line user error.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class PrecisionError(ValueError):
    """A precision that is unknown or that this device cannot run."""


@functools.cache
def cpu_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively, as torch dispatches them (ATEN_CPU_CAPABILITY=avx2 or
    ONEDNN_MAX_CPU_ISA=AVX2 make torch use AVX2 kernels, and then it does not)."""
    import platform

    import torch

    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn_bf16 = False
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
        capability = torch.backends.cpu.get_cpu_capability()
        has_units = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return capability.startswith("AVX512") and has_units and onednn_bf16
    return onednn_bf16  # aarch64: oneDNN reports the BF16 extension of the core (e.g. Neoverse V1/V2)


def cuda_native_bf16(device: torch.device) -> bool:
    import torch

    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(requested: str, device: torch.device, *, cpu_bf16: bool = True) -> str:
    """The precision to run: 'auto' -> bf16 where `device` runs it natively, else fp32. `cpu_bf16=False` keeps
    'auto' at fp32 on every CPU (for work measured slower in bf16 there even with native units)."""
    if requested not in PRECISIONS:
        raise PrecisionError(f"unknown precision '{requested}' (use one of {', '.join(PRECISIONS)})")
    if requested == "fp16" and device.type == "cpu":
        raise PrecisionError("fp16 is for GPUs; use auto, bf16 or fp32 on the CPU")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if cuda_native_bf16(device) else "fp32"
    if device.type == "cpu" and cpu_bf16 and cpu_native_bf16():
        return "bf16"
    return "fp32"


def matmul_gflops(dtype: torch.dtype, size: int = 256, seconds: float = 0.05) -> float:
    """GFLOP/s of a size x size matmul in `dtype` on one CPU thread, timed for about `seconds`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.ones(size, size, dtype=dtype)
        b = torch.ones(size, size, dtype=dtype)
        a @ b  # warm-up: oneDNN builds its kernel on first use
        runs, start = 0, time.perf_counter()
        while runs < 2 or time.perf_counter() - start < seconds:
            a @ b
            runs += 1
        return 2 * size**3 * runs / (time.perf_counter() - start) / 1e9
    finally:
        torch.set_num_threads(threads)


@functools.cache
def bf16_slowdown() -> float:
    """How many times slower a bf16 matmul is than fp32 on this CPU (timed once per process)."""
    import torch

    return matmul_gflops(torch.float32) / max(matmul_gflops(torch.bfloat16), 1e-9)


def emulated_bf16_warning(resolved: str, device: torch.device, where: str) -> str | None:
    """One warning line when bf16 runs on a CPU without native bf16 (emulated), with the slowdown measured on a
    small matmul now; None otherwise."""
    if resolved != "bf16" or device.type != "cpu" or cpu_native_bf16():
        return None
    import torch

    return (f"warning: {where}: bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()}, no native bf16) is "
            f"emulated: a matmul ran {bf16_slowdown():.0f}x slower than fp32 here; set it to auto or fp32")
