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
