"""Figures of the evaluate stage: per-snippet action probability against ground truth (the paper's Fig. 1); and
of the train stage: its loss terms and learning rate per epoch, the curves `dvc plots show` draws, as a PNG that
needs no network (DVC's HTML loads its charting library from a CDN).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so importing this module neither needs a
display nor changes the global backend.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.common import atomic_write_bytes

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn
    from matplotlib.figure import Figure

# One curve: (video id, class label, snippet times (T,), probabilities (T,), ground-truth segments (G, 2),
# predicted segments (P, 2)).
Curve = tuple[
    str, str, Sequence[float], Sequence[float], Sequence[Sequence[float]], Sequence[Sequence[float]]
]


def _segments(value, what: str) -> np.ndarray:
    segments = np.asarray(value, dtype=np.float64)
    if segments.size == 0:
        return segments.reshape(0, 2)
    if segments.ndim != 2 or segments.shape[1] != 2:
        raise ValueError(f"{what} must be (N, 2) [start, end] pairs, got shape {segments.shape}")
    return segments


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "x"


def probability_figure(
    video: str,
    label: str,
    times: Sequence[float],
    probs: Sequence[float],
    gt_segments: Sequence[Sequence[float]],
    pred_segments: Sequence[Sequence[float]],
    threshold: float | None = None,
) -> Figure:
    """One figure: the probability curve, ground truth shaded, predicted segments as bars underneath."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times = np.asarray(times, dtype=np.float64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(times) != len(probs):
        raise ValueError(f"{video}: {len(times)} times but {len(probs)} probabilities")
    gt = _segments(gt_segments, "gt_segments")
    pred = _segments(pred_segments, "pred_segments")

    fig = Figure(figsize=(9, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (start, end) in enumerate(gt):
        ax.axvspan(
            start,
            end,
            ymin=0.12,
            color="tab:green",
            alpha=0.25,
            lw=0,
            label="ground truth" if i == 0 else None,
        )
    for i, (start, end) in enumerate(pred):
        ax.hlines(-0.06, start, end, color="tab:red", lw=5, label="predicted" if i == 0 else None)
    ax.plot(times, probs, color="tab:blue", lw=1.5, label="p(action)")
    if threshold is not None:
        ax.axhline(threshold, color="0.5", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    ax.set_ylim(-0.12, 1.02)
    span = np.concatenate([times, gt.ravel(), pred.ravel()])
    if span.size and span.max() > span.min():
        ax.set_xlim(span.min(), span.max())
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_title(f"{video} — {label}", fontsize=10, loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, ncol=4, frameon=False)
    fig.tight_layout()
    return fig


def plot_probability_curves(
    curves: Iterable[Curve], out_dir: str | os.PathLike, threshold: float | None = None
) -> list[Path]:
    """Write one PNG per curve under `out_dir` (named `<video>__<label>.png`); returns the paths in order."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    used: set[str] = set()
    for video, label, times, probs, gt_segments, pred_segments in curves:
        fig = probability_figure(video, label, times, probs, gt_segments, pred_segments, threshold)
        stem = f"{_slug(video)}__{_slug(label)}"
        name, n = f"{stem}.png", 1
        while name in used:  # distinct ids can share a slug
            n += 1
            name = f"{stem}-{n}.png"
        used.add(name)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        path = out_dir / name
        atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    return written


def training_figure(history: Sequence[dict[str, float]]) -> Figure:
    """Each loss term's epoch mean (log scale when all are positive) above the learning rate, against the epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not history:
        raise ValueError("no epoch to plot")
    epochs = [int(row["epoch"]) for row in history]
    terms = list(dict.fromkeys(k for row in history for k in row if k not in ("epoch", "lr")))
    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    loss_ax, lr_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for term in terms:
        values = [row.get(term, np.nan) for row in history]
        loss_ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, ms=3, lw=1.6 if term == "total" else 1,
                     label=term)
    values = np.array([row.get(t, np.nan) for row in history for t in terms], dtype=np.float64)
    if values.size and np.nanmin(values) > 0:
        loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss (epoch mean)")
    loss_ax.set_title("Training loss per epoch", fontsize=10, loc="left")
    loss_ax.legend(fontsize=8, frameon=False, ncol=min(5, len(terms)))
    lr_ax.plot(epochs, [row.get("lr", np.nan) for row in history], color="0.3", lw=1)
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("epoch")
    lr_ax.set_title("Learning rate at the end of each epoch", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def plot_training(history: Sequence[dict[str, float]], path: str | os.PathLike) -> Path:
    """Write ``training_figure(history)`` as a PNG (atomically)."""
    buffer = io.BytesIO()
    training_figure(history).savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
