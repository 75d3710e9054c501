"""The precision a run resolved, said once per process: which precision runs where, and a warning when an explicit
bf16 will be emulated on this CPU (``grizal.precision`` owns the rule)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def hardware(device: torch.device) -> str:
    """'CPU AVX2, no native bf16' / 'CPU AVX512, native bf16' / 'cuda:0 NVIDIA H200, native bf16'."""
    import torch

    from grizal.precision import cpu_native_bf16, cuda_native_bf16

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{device} {name}, {'native' if cuda_native_bf16(device) else 'no native'} bf16"
    if device.type == "cpu":
        native = cpu_native_bf16()
        return f"CPU {torch.backends.cpu.get_cpu_capability()}, {'native' if native else 'no native'} bf16"
    return str(device)


@functools.cache
def announce(key: str, requested: str, resolved: str, device: torch.device) -> None:
    """Print `key: requested -> resolved on device (hardware)` once, and the emulation warning where it applies."""
    from grizal.precision import emulated_bf16_warning

    shown = resolved if requested == resolved else f"{requested} -> {resolved}"
    print(f"{key}: {shown} on {device} ({hardware(device)})")
    warning = emulated_bf16_warning(resolved, device, key)
    if warning:
        print(warning)
