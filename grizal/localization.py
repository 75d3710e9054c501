"""Per-snippet probabilities -> scored segments in seconds (no I/O, numpy only).

For each threshold: the runs of snippets with probability >= threshold become candidates; runs separated by
at most `merge_gap` seconds are merged; candidates shorter than `min_length` seconds are dropped; each gets
a score. The candidates of all thresholds are pooled (identical intervals kept once, best score), then
non-maximum suppression (Gaussian soft-NMS, hard NMS or none) and the `max_segments` best are returned.

Snippet i spans from the midpoint with its left neighbour to the midpoint with its right neighbour; the first
and last snippets extend by half their neighbour gap, clipped to [0, duration]. For the centres
(i + 0.5) * duration / T that `grizal.temporal.snippet_times` gives, snippet i is exactly
[i, i + 1) * duration / T.

Across classes (`cross_class`, applied by `cross_class_curves` to the (classes, T) curves of one video before
the steps above): `geometric` replaces each class's probability by the geometric mean of it and its share of
the evaluated classes' summed probability at that snippet, so a snippet that fits several look-alike classes
counts less for each of them; `none` keeps the curves. One class alone is always kept as it is.

Scores: `mean` is the mean probability of the snippets inside (merged gaps included, which penalises
bridging a dip); `contrast` is that mean times (1 - the mean probability in the context just outside: the
snippets within `context` x the segment's length on each side, at least one where the video has one), which
favours segments with sharp boundaries; `max` is the highest probability inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from grizal.errors import ConfigError

SCORES = ("mean", "contrast", "max")
NMS_KINDS = ("soft", "hard", "none")
CROSS_CLASS = ("none", "geometric")
LOCALIZATION_DEFAULTS: dict[str, Any] = {
    "thresholds": [0.3, 0.4, 0.5, 0.6, 0.7],
    "merge_gap": 0.0,
    "min_length": 0.0,
    "score": "contrast",
    "context": 0.25,
    "nms": "soft",
    "nms_sigma": 0.5,
    "nms_iou": 0.5,
    "min_score": 0.001,
    "max_segments": 100,
    "cross_class": "none",
}


def localization_config(section: dict[str, Any] | None) -> dict[str, Any]:
    """The params.yaml `localization:` section with defaults filled in; raises `ConfigError` naming a bad key."""
    section = dict(section or {})
    unknown = sorted(set(section) - set(LOCALIZATION_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown localization setting '{unknown[0]}' (known: {', '.join(LOCALIZATION_DEFAULTS)})"
        )
    config = {**LOCALIZATION_DEFAULTS, **section}
    thresholds = config["thresholds"]
    if isinstance(thresholds, int | float) and not isinstance(thresholds, bool):
        thresholds = [thresholds]
    if not isinstance(thresholds, list | tuple) or not thresholds or not all(
        _is_number(t) and 0.0 < t < 1.0 for t in thresholds
    ):
        raise ConfigError(f"localization.thresholds must be a non-empty list of numbers in (0, 1), got {thresholds!r}")
    config["thresholds"] = [float(t) for t in thresholds]
    for name in ("merge_gap", "min_length", "context", "min_score"):
        if not _is_number(config[name]) or config[name] < 0:
            raise ConfigError(f"localization.{name} must be a number >= 0, got {config[name]!r}")
    if config["score"] not in SCORES:
        raise ConfigError(f"localization.score must be one of {', '.join(SCORES)}, got {config['score']!r}")
    if config["nms"] not in NMS_KINDS:
        raise ConfigError(f"localization.nms must be one of {', '.join(NMS_KINDS)}, got {config['nms']!r}")
    _check_cross_class(config["cross_class"])
    if not _is_number(config["nms_sigma"]) or config["nms_sigma"] <= 0:
        raise ConfigError(f"localization.nms_sigma must be a number > 0, got {config['nms_sigma']!r}")
    if not _is_number(config["nms_iou"]) or not 0.0 <= config["nms_iou"] <= 1.0:
        raise ConfigError(f"localization.nms_iou must be a number in [0, 1], got {config['nms_iou']!r}")
    if isinstance(config["max_segments"], bool) or not isinstance(config["max_segments"], int) \
            or config["max_segments"] < 1:
        raise ConfigError(f"localization.max_segments must be an integer >= 1, got {config['max_segments']!r}")
    return config


def _check_cross_class(mode: Any) -> None:
    if mode not in CROSS_CLASS:
        raise ConfigError(f"localization.cross_class must be one of {', '.join(CROSS_CLASS)}, got {mode!r}")


def cross_class_curves(probs: np.ndarray, mode: str) -> np.ndarray:
    """probs `(..., C, T)` in [0, 1] for the C evaluated classes -> the curves to localize (see module doc)."""
    probs = np.asarray(probs)
    _check_cross_class(mode)
    if mode == "none" or probs.shape[-2] == 1:
        return probs
    total = probs.sum(axis=-2, keepdims=True)
    share = np.divide(probs, total, out=np.zeros_like(probs), where=total > 0)
    return np.sqrt(probs * share).astype(probs.dtype)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def snippet_bounds(times: np.ndarray, duration: float) -> np.ndarray:
    """Boundaries `(T + 1,)` in seconds of the snippets centred at `times`."""
    if times.size == 1:
        return np.array([0.0, duration])
    middle = (times[1:] + times[:-1]) / 2
    first = times[0] - (times[1] - times[0]) / 2
    last = times[-1] + (times[-1] - times[-2]) / 2
    return np.clip(np.concatenate([[first], middle, [last]]), 0.0, duration)


def _runs(above: np.ndarray) -> np.ndarray:
    """`(n, 2)` [first, last + 1) snippet indices of the runs of True."""
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def _merge(runs: np.ndarray, bounds: np.ndarray, merge_gap: float) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, stop in runs:
        if merged and bounds[first] - bounds[merged[-1][1]] <= merge_gap:
            merged[-1] = (merged[-1][0], int(stop))
        else:
            merged.append((int(first), int(stop)))
    return merged


def _score(probs: np.ndarray, bounds: np.ndarray, first: int, stop: int, kind: str, context: float) -> float:
    inside = probs[first:stop]
    if kind == "max":
        return float(inside.max())
    mean = float(inside.mean())
    if kind == "mean":
        return mean
    reach = context * (bounds[stop] - bounds[first])
    centres = (bounds[:-1] + bounds[1:]) / 2
    left = np.flatnonzero((centres < bounds[first]) & (centres >= bounds[first] - reach))
    right = np.flatnonzero((centres > bounds[stop]) & (centres <= bounds[stop] + reach))
    if left.size == 0 and first > 0:
        left = np.array([first - 1])
    if right.size == 0 and stop < probs.size:
        right = np.array([stop])
    outside = np.concatenate([left, right])
    return mean * (1.0 - float(probs[outside].mean())) if outside.size else mean


def _iou(segment: np.ndarray, others: np.ndarray) -> np.ndarray:
    overlap = np.clip(np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0]), 0.0, None)
    union = (segment[1] - segment[0]) + (others[:, 1] - others[:, 0]) - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def non_maximum_suppression(
    segments: np.ndarray, kind: str = "soft", sigma: float = 0.5, iou: float = 0.5, min_score: float = 0.001
) -> np.ndarray:
    """segments `(n, 3)` [start, end, score] -> kept rows, best first.

    hard: drop every segment whose IoU with a better kept one exceeds `iou`. soft (Gaussian): multiply the
    remaining scores by exp(-IoU^2 / sigma) after each pick and drop those that fall below `min_score`.
    """
    remaining = segments[np.argsort(-segments[:, 2], kind="stable")].copy()
    if kind == "none":
        return remaining
    kept = []
    while remaining.shape[0]:
        best = int(np.argmax(remaining[:, 2]))
        pick = remaining[best]
        kept.append(pick)
        remaining = np.delete(remaining, best, axis=0)
        if not remaining.shape[0]:
            break
        overlap = _iou(pick, remaining)
        if kind == "hard":
            remaining = remaining[overlap <= iou]
        else:
            remaining[:, 2] *= np.exp(-(overlap**2) / sigma)
            remaining = remaining[remaining[:, 2] >= min_score]
    return np.array(kept).reshape(-1, 3)


def probs_to_segments(
    probs: Sequence[float] | np.ndarray,
    times: Sequence[float] | np.ndarray,
    duration: float,
    **params: Any,
) -> list[tuple[float, float, float]]:
    """probs `(T,)` in [0, 1], times `(T,)` snippet centres in seconds (increasing), duration in seconds ->
    [(start, end, score)] sorted by score, best first. params: the `localization:` section (see module doc);
    a torch tensor may be passed for probs after `.detach().cpu().numpy()`."""
    config = localization_config(params)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if probs.size == 0 or probs.size != times.size:
        raise ValueError(f"probs and times must be non-empty and equally long, got {probs.size} and {times.size}")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probs must be finite numbers in [0, 1]")
    if not _is_number(duration) or duration <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise ValueError("times must be finite and strictly increasing")
    bounds = snippet_bounds(times, float(duration))
    candidates: dict[tuple[int, int], float] = {}
    for threshold in config["thresholds"]:
        for first, stop in _merge(_runs(probs >= threshold), bounds, config["merge_gap"]):
            if bounds[stop] - bounds[first] < config["min_length"] or bounds[stop] <= bounds[first]:
                continue
            score = _score(probs, bounds, first, stop, config["score"], config["context"])
            candidates[(first, stop)] = max(score, candidates.get((first, stop), -1.0))
    if not candidates:
        return []
    segments = np.array([[bounds[first], bounds[stop], score] for (first, stop), score in candidates.items()])
    kept = non_maximum_suppression(
        segments, config["nms"], config["nms_sigma"], config["nms_iou"], config["min_score"]
    )[: config["max_segments"]]
    return [(float(start), float(end), float(score)) for start, end, score in kept]
