"""The one device resolver: a device name from a config ('auto', 'cpu', 'cuda', 'cuda:N', 'mps') -> a torch device.

Library code raises ``DeviceError`` (a ``ValueError``); the pipeline turns it into its one-line user error
(``pipeline.common.resolve_device``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class DeviceError(ValueError):
    """A device that does not exist or is not available here."""


def resolve_device(name: str | None, *, use_mps: bool = False) -> torch.device:
    """'auto' (or empty) picks the first CUDA GPU when there is one (then Apple's MPS with ``use_mps``), else the
    CPU; a named accelerator that is not available is a ``DeviceError``."""
    import torch

    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if use_mps and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device '{name}' asked for, but no CUDA GPU is available")
    return resolved
