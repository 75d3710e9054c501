"""Resampling raw per-frame features to the fixed temporal length T the model reads.

Videos are sampled at a fixed rate, so their feature sequences have different lengths N. The model reads T
snippets per video; snippet i covers [i, i + 1) * duration / T and takes the feature at its centre, linearly
interpolated between the two nearest sampled frames (held constant before the first and after the last).
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def snippet_times(duration: float, T: int) -> np.ndarray:
    """Centres of T equal snippets covering [0, duration], in seconds: (i + 0.5) * duration / T."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")
    return (np.arange(T, dtype=np.float64) + 0.5) * (float(duration) / T)


def interpolation_weights(timestamps: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query time: the indices of the frames before and after it and the weight of the later one."""
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("timestamps must be a non-empty 1-D sequence")
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        raise ValueError("timestamps must be strictly increasing")
    t = np.clip(np.asarray(times, dtype=np.float64), ts[0], ts[-1])
    hi = np.searchsorted(ts, t, side="left").clip(0, ts.size - 1)
    lo = np.maximum(hi - 1, 0)
    span = ts[hi] - ts[lo]
    weight = np.divide(t - ts[lo], span, out=np.zeros_like(t), where=span > 0)
    return lo, hi, weight


def resample(features: Array, timestamps: Array, duration: float, T: int) -> Array:
    """(N, D) features at `timestamps` -> (T, D) at the snippet centres; numpy in, numpy out (same for torch)."""
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(features.shape)}")
    ts = timestamps.detach().cpu().numpy() if isinstance(timestamps, torch.Tensor) else np.asarray(timestamps)
    if features.shape[0] != ts.shape[0]:
        raise ValueError(f"{features.shape[0]} feature rows but {ts.shape[0]} timestamps")
    lo, hi, weight = interpolation_weights(ts, snippet_times(duration, T))
    if isinstance(features, torch.Tensor):
        w = torch.from_numpy(weight).to(device=features.device, dtype=features.dtype)[:, None]
        lo_t = torch.from_numpy(lo).to(features.device)
        hi_t = torch.from_numpy(hi).to(features.device)
        return features[lo_t] * (1 - w) + features[hi_t] * w
    w = weight.astype(features.dtype, copy=False)[:, None]
    return features[lo] * (1 - w) + features[hi] * w
