"""This machine's own limit, measured in the same run as a benchmark, so figures from different CPUs compare."""

from __future__ import annotations

import time


def matmul_gflops(dtype_name: str, size: int = 1024, seconds: float = 1.0) -> float:
    """The CPU's square matmul rate in GFLOP/s for ``dtype_name`` ("float32", "bfloat16"), best of repeated
    multiplies for ``seconds``."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def cpu_name() -> str:
    """The CPU's model name as the kernel reports it ('AMD EPYC', 'Intel(R) Xeon(R) Platinum 8480+', ...)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_description() -> str:
    """'AMD EPYC, AVX2 kernels, no native bf16': what a speed figure was measured on (torch's dispatch, so
    ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA show as the CPU they make torch behave as)."""
    import torch

    from grizal.precision import cpu_native_bf16

    native = "native bf16" if cpu_native_bf16() else "no native bf16"
    return f"{cpu_name()}, {torch.backends.cpu.get_cpu_capability()} kernels, {native}"
