"""Device and dtype choice for the local model backends."""

from __future__ import annotations

from pipeline.priors.faults import FatalBackendError


def pick_device(requested: str) -> str:
    """``grizal.devices.resolve_device`` (with Apple's MPS for 'auto'); a device not available here is fatal."""
    from grizal.devices import DeviceError, resolve_device

    try:
        return str(resolve_device(requested, use_mps=True))
    except DeviceError as err:
        raise FatalBackendError("device", str(err)) from None


def pick_dtype(device: str):
    """Half precision on accelerators; float32 on CPU, where half-precision generation is slow or unsupported."""
    import torch

    return torch.float32 if device == "cpu" else torch.float16
