"""Optical flow as a colour image with the standard flow colour wheel (Baker et al., Middlebury benchmark).

Hue encodes the direction of motion and saturation its magnitude, relative to the largest magnitude in the
frame (or a fixed `max_magnitude`, so that colours compare across frames). The result is an ordinary RGB
picture that the CLIP image encoder can read, as the paper's optical-flow block does.
"""

from __future__ import annotations

import numpy as np
import torch

# Number of hues between the six primary and secondary colours of the wheel.
_SEGMENTS = ((15, (255, 0, 0), (255, 255, 0)),   # red -> yellow
             (6, (255, 255, 0), (0, 255, 0)),    # yellow -> green
             (4, (0, 255, 0), (0, 255, 255)),    # green -> cyan
             (11, (0, 255, 255), (0, 0, 255)),   # cyan -> blue
             (13, (0, 0, 255), (255, 0, 255)),   # blue -> magenta
             (6, (255, 0, 255), (255, 0, 0)))    # magenta -> red


def color_wheel() -> np.ndarray:
    """(55, 3) float32 colours in [0, 255], starting at red and turning through yellow, green, cyan, ..."""
    rows = []
    for steps, start, end in _SEGMENTS:
        t = np.floor(255 * np.arange(steps) / steps) / 255
        rows.append(np.asarray(start)[None, :] + t[:, None] * (np.asarray(end) - np.asarray(start))[None, :])
    return np.concatenate(rows).astype(np.float32)


_WHEEL = torch.from_numpy(color_wheel())


def flow_to_color(flow: torch.Tensor | np.ndarray, max_magnitude: float | None = None) -> torch.Tensor:
    """(B, 2, H, W) or (2, H, W) flow in pixels -> uint8 RGB of shape (B, 3, H, W) or (3, H, W).

    `max_magnitude=None` normalises each image by its own largest flow vector; a number fixes the scale and
    vectors longer than it are drawn darker (x 0.75), as in the reference implementation.
    """
    flow = torch.as_tensor(flow, dtype=torch.float32)
    single = flow.ndim == 3
    if single:
        flow = flow[None]
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W) or (2, H, W), got {tuple(flow.shape)}")
    u, v = flow[:, 0], flow[:, 1]
    radius = torch.sqrt(u * u + v * v)
    if max_magnitude is None:
        scale = radius.flatten(1).amax(dim=1).clamp_min(0)[:, None, None] + torch.finfo(torch.float32).eps
    else:
        if max_magnitude <= 0:
            raise ValueError("max_magnitude must be positive")
        scale = torch.tensor(float(max_magnitude))
    u, v, radius = u / scale, v / scale, radius / scale
    wheel = _WHEEL.to(flow.device)
    n = wheel.shape[0]
    angle = torch.atan2(-v, -u) / torch.pi  # in [-1, 1]
    position = (angle + 1) / 2 * (n - 1)
    k0 = position.floor().long().clamp(0, n - 1)
    k1 = torch.where(k0 + 1 == n, torch.zeros_like(k0), k0 + 1)
    frac = (position - k0.float())[..., None]
    color = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255  # (B, H, W, 3)
    inside = (radius <= 1)[..., None]
    color = torch.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
    image = torch.floor(255 * color).clamp(0, 255).to(torch.uint8).permute(0, 3, 1, 2)
    return image[0] if single else image
