"""Device and dtype choice for the local model backends."""

from __future__ import annotations

from pipeline.priors.faults import FatalBackendError


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise FatalBackendError("device", f"'{requested}' requested but CUDA is not available")
    return requested


def pick_dtype(device: str):
    """Half precision on accelerators; float32 on CPU, where half-precision generation is slow or unsupported."""
    import torch

    return torch.float32 if device == "cpu" else torch.float16
