"""The timeline figure of `grizal localize`: each action's probability over time, its segments shaded, and a
strip of video thumbnails placed at their times along the same axis.

Drawn on matplotlib's Agg canvas directly (no pyplot), like ``pipeline.modelling.plots``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.common import atomic_write_bytes
from pipeline.features.video import VideoReader

if TYPE_CHECKING:  # matplotlib and PIL load when a figure is drawn
    from matplotlib.figure import Figure
    from PIL import Image

# (time in seconds, RGB uint8 image (H, W, 3))
Thumbnail = tuple[float, np.ndarray]
# (start, end, score) in seconds
Segment = tuple[float, float, float]

FIG_WIDTH_IN, DPI = 11.0, 100
CURVES_HEIGHT_IN, LANE_HEIGHT_IN, STRIP_HEIGHT_IN = 3.0, 0.3, 1.15
LEFT, RIGHT = 0.07, 0.98  # axes span as figure fractions
LEGEND_CHARS, TITLE_CHARS = 32, 60  # longer labels and titles are cut (with …)
LEGEND_FONT, TITLE_FONT = 8, 10
LEGEND_ROW_IN = 0.17


def cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def legend_label(action: str) -> str:
    return cut(action, LEGEND_CHARS)


def _legend_columns(title: str, labels: Sequence[str]) -> int:
    """The most legend columns (at most 4) that fit on the title's row to the right of the title, measured
    with the fonts the figure uses; the legend grows upwards in rows, so it never reaches over the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scratch = Figure(dpi=DPI)
    renderer = FigureCanvasAgg(scratch).get_renderer()

    def width(text: str, size: float) -> float:
        return scratch.text(0, 0, text, fontsize=size).get_window_extent(renderer).width

    # handle (2 em) + pad to the text (0.8 em) + space between columns (2 em), as matplotlib's defaults
    entry = max(width(label, LEGEND_FONT) for label in labels) + 4.8 * LEGEND_FONT * DPI / 72
    free = (RIGHT - LEFT) * FIG_WIDTH_IN * DPI - width(title, TITLE_FONT) - 30
    return max(1, min(4, len(labels), int(free // entry)))


def video_thumbnails(path: str | os.PathLike, duration: float, n: int, height: int = 96) -> list[Thumbnail]:
    """About `n` frames near the centres of n equal parts of the video, scaled to `height` pixels.

    Decoded with the stages' reader, sampling two slots per part and keeping the frame nearest each centre;
    raises ``pipeline.features.video.VideoError`` for a video that cannot be decoded.
    """
    if n < 1 or duration <= 0:
        return []
    from PIL import Image

    targets = (np.arange(n) + 0.5) * duration / n
    frames: list[tuple[float, Image.Image]] = []
    for frame in VideoReader(path, sample_fps=2 * n / duration, min_frames=1).frames():
        image = frame.image
        width = max(1, round(image.width * height / image.height))
        frames.append((frame.timestamp, image.resize((width, height), Image.BILINEAR)))
    if not frames:
        return []
    times = np.array([t for t, _ in frames])
    chosen = dict.fromkeys(int(np.abs(times - target).argmin()) for target in targets)  # ordered, no repeats
    return [(frames[i][0], np.asarray(frames[i][1].convert("RGB"))) for i in chosen]


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _pack(segments: Sequence[Segment]) -> list[int]:
    """The line of each segment: the first one where it overlaps no segment placed before it."""
    lines: list[list[tuple[float, float]]] = []
    out = []
    for start, end, _ in segments:
        free = (i for i, taken in enumerate(lines) if all(end <= s or start >= e for s, e in taken))
        line = next(free, None)
        if line is None:
            line = len(lines)
            lines.append([])
        lines[line].append((start, end))
        out.append(line)
    return out


def timeline_figure(
    title: str,
    duration: float,
    times: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    segments: Mapping[str, Sequence[Segment]],
    thumbnails: Sequence[Thumbnail] = (),
    thresholds: Sequence[float] = (),
    ylabel: str = "probability",
) -> Figure:
    """Curves (one colour per action) on top, one lane of segment bars per action, thumbnails underneath.

    `curves` must be the curves the segments were cut from; `thresholds` (drawn as dashed lines) the levels
    they were cut at."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times = np.asarray(times, dtype=np.float64)
    actions = list(curves)
    title = cut(title, TITLE_CHARS)
    columns = _legend_columns(title, [legend_label(a) for a in actions]) if actions else 1
    legend_rows = -(-len(actions) // columns)
    colors = dict(zip(actions, _colors(len(actions)), strict=True))
    lanes_in = LANE_HEIGHT_IN * max(1, len(actions))
    strip_in = STRIP_HEIGHT_IN if thumbnails else 0.0
    margin_top, margin_bottom = max(0.55, 0.25 + LEGEND_ROW_IN * legend_rows), 0.5
    height_in = margin_top + CURVES_HEIGHT_IN + lanes_in + strip_in + margin_bottom
    fig = Figure(figsize=(FIG_WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(fig)

    def box(bottom_in: float, h_in: float) -> list[float]:
        return [LEFT, bottom_in / height_in, RIGHT - LEFT, h_in / height_in]

    strip_bottom = margin_bottom
    plot_bottom = strip_bottom + strip_in
    ax = fig.add_axes(box(plot_bottom, CURVES_HEIGHT_IN + lanes_in))
    lane_span = 1.02 * lanes_in / CURVES_HEIGHT_IN  # probability units the lanes take below zero
    lane_step = lane_span / max(1, len(actions))
    curves_from = lane_span / (1.02 + lane_span)  # where y = 0 lies, as a fraction of the axes height
    for row, action in enumerate(actions):
        color = colors[action]
        probs = np.asarray(curves[action], dtype=np.float64)
        if len(probs) != len(times):
            raise ValueError(f"{action}: {len(probs)} probabilities for {len(times)} times")
        ax.plot(times, probs, color=color, lw=1.6, label=legend_label(action))
        found = list(segments.get(action, ()))
        best = max((score for _, _, score in found), default=1.0) or 1.0
        rows = _pack(found)
        n_rows = max(rows, default=0) + 1
        # Overlapping segments go to separate lines of the action's lane, so nested ones stay visible; the
        # shading and the line fade with the score relative to the action's best segment.
        for (start, end, score), line in zip(found, rows, strict=True):
            strength = max(0.2, score / best)
            ax.axvspan(start, end, ymin=curves_from, color=color, alpha=0.16 * strength, lw=0)
            y = -(row + (line + 0.5) / n_rows) * lane_step
            ax.hlines(y, start, end, color=color, alpha=0.3 + 0.7 * strength,
                      lw=max(1.5, min(5.0, 10 / n_rows)))
    ax.axhline(0.0, color="0.6", lw=0.6)
    for threshold in thresholds:
        ax.axhline(float(threshold), color="0.45", lw=0.6, ls="--", zorder=0)
    ax.set_xlim(0.0, duration)
    ax.set_ylim(-lane_span, 1.02)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=TITLE_FONT, loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=LEGEND_FONT, ncol=columns,
              frameon=False)
    if thumbnails:
        ax.tick_params(labelbottom=False)
        _thumbnail_strip(fig, box(strip_bottom, strip_in), duration, thumbnails)
    else:
        ax.set_xlabel("time (s)")
    return fig


def _thumbnail_strip(fig: Figure, rect: list[float], duration: float,
                     thumbnails: Sequence[Thumbnail]) -> None:
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    strip = fig.add_axes(rect)
    strip.set_xlim(0.0, duration)
    strip.set_ylim(0.0, 1.0)
    strip.set_yticks([])
    strip.set_xlabel("time (s)")
    for side in ("left", "right", "top"):
        strip.spines[side].set_visible(False)
    width_px = (RIGHT - LEFT) * FIG_WIDTH_IN * DPI
    height_px = rect[3] * fig.get_figheight() * DPI
    slot_px = width_px / len(thumbnails)
    for t, image in thumbnails:
        h, w = image.shape[:2]
        zoom = min(0.86 * slot_px / w, 0.8 * height_px / h)
        picture = OffsetImage(image, zoom=zoom, dpi_cor=False)
        strip.add_artist(AnnotationBbox(picture, (t, 0.55), xycoords="data", frameon=True, pad=0.1,
                                        bboxprops={"edgecolor": "0.5", "lw": 0.5}))
        strip.plot([t], [0.0], marker="|", color="0.3", markersize=8, clip_on=False)


def write_timeline(path: str | os.PathLike, title: str, duration: float, times: Sequence[float],
                   curves: Mapping[str, Sequence[float]], segments: Mapping[str, Sequence[Segment]],
                   thumbnails: Sequence[Thumbnail] = (), thresholds: Sequence[float] = (),
                   ylabel: str = "probability") -> Path:
    """Draw the timeline and write it as a PNG (atomically)."""
    fig = timeline_figure(title, duration, times, curves, segments, thumbnails, thresholds, ylabel)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
