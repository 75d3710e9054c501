"""Temporal action localization metrics over flat numpy arrays (no I/O).

Definitions, each matched to the code the field reports numbers with:

- **mAP at a tIoU threshold** follows ActivityNet's `Evaluation/eval_detection.py`
  (`compute_average_precision_detection`): per class, predictions are visited in descending score order;
  a prediction walks the ground-truth instances of its video in descending tIoU order, skips those already
  matched at this threshold, and becomes a true positive on the first one with tIoU >= threshold, otherwise a
  false positive. AP is the VOC-2011 interpolated area under the precision/recall curve (recall denominator:
  the number of ground-truth instances of the class). mAP is the mean over classes that have ground truth;
  a class with ground truth and no prediction scores 0.
  Ties follow the reference's `argsort()[::-1]` read with a stable sort: among equal scores the prediction
  listed *later* is visited first, and among ground truths at equal tIoU the one listed later is taken first.
- **average tIoU** is the mIoU column of T3AL's `src/evaluate.py` (which GRIZAL's release copies): the mean
  tIoU over every (prediction, ground-truth instance) pair of the same class in the same video, zero-overlap
  pairs included. Predictions in a video without ground truth of their class form no pair.
- **mean best tIoU** (reported alongside, not in the paper): per ground-truth instance, the highest tIoU with
  any prediction of its class in its video (0 when there is none), averaged over instances.
- **R@n, IoU=m** (Charades-STA): every ground-truth instance is a query; the query's candidates are the
  predictions of its class (sentence) in its video, in the same score order; a hit when any of the top n
  has tIoU >= m. Recall is the mean over queries.

A tIoU whose union is zero (two zero-length segments) counts as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Instances:
    """Segments of one kind (ground truth or predictions) as parallel arrays.

    `video` and `label` are integer indices shared by the ground truth and predictions being compared;
    `scores` is required for predictions and ignored for ground truth. The row order is meaningful: it is the
    order of the source file and decides ties (see the module docstring).
    """

    video: np.ndarray
    label: np.ndarray
    segments: np.ndarray
    scores: np.ndarray | None = None

    def __post_init__(self):
        video = np.asarray(self.video, dtype=np.int64).reshape(-1)
        label = np.asarray(self.label, dtype=np.int64).reshape(-1)
        segments = np.asarray(self.segments, dtype=np.float64).reshape(-1, 2)
        if not len(video) == len(label) == len(segments):
            raise ValueError(
                f"video ({len(video)}), label ({len(label)}) and segments ({len(segments)}) differ in length"
            )
        if len(video) and (video.min() < 0 or label.min() < 0):
            raise ValueError("video and label indices must be non-negative")
        object.__setattr__(self, "video", video)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "segments", segments)
        if self.scores is not None:
            scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if len(scores) != len(video):
                raise ValueError(f"scores ({len(scores)}) and segments ({len(video)}) differ in length")
            object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return len(self.video)


@dataclass(frozen=True)
class DetectionScores:
    """Everything `score_detections` measures. AP rows of classes without ground truth are NaN."""

    tious: np.ndarray  # (K,)
    ap: np.ndarray  # (C, K)
    gt_per_class: np.ndarray  # (C,)
    predictions_per_class: np.ndarray  # (C,)
    average_tiou: float  # NaN when no prediction shares a video and class with a ground truth
    mean_best_tiou: float
    recall: dict[tuple[int, float], float] = field(default_factory=dict)  # (n, m) -> R@n,IoU=m

    @property
    def scored_classes(self) -> np.ndarray:
        return np.flatnonzero(self.gt_per_class > 0)

    @property
    def mean_ap(self) -> np.ndarray:
        """mAP per threshold over the classes that have ground truth."""
        return self.ap[self.scored_classes].mean(axis=0)

    @property
    def average_mean_ap(self) -> float:
        return float(self.mean_ap.mean())


def segment_iou(targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """tIoU of every target `(N, 2)` with every candidate `(M, 2)`, as an `(N, M)` matrix."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    return _paired_iou(targets[:, None, :], candidates[None, :, :])


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise tIoU of broadcastable `(..., 2)` segment arrays, with the reference's operation order so
    that values sitting exactly on a threshold compare the same way."""
    intersection = (np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    union = (b[..., 1] - b[..., 0]) + (a[..., 1] - a[..., 0]) - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """VOC-2011 interpolated AP along the last axis (recall non-decreasing along it)."""
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    pad = [(0, 0)] * (precision.ndim - 1)
    mprec = np.pad(precision, pad + [(1, 1)], constant_values=0.0)
    mrec = np.concatenate(
        [np.zeros(recall.shape[:-1] + (1,)), recall, np.ones(recall.shape[:-1] + (1,))], axis=-1
    )
    mprec = np.flip(np.maximum.accumulate(np.flip(mprec, -1), axis=-1), -1)
    # Steps where recall does not move contribute zero, so summing every step equals the reference's sum
    # over recall changes.
    return np.sum(np.diff(mrec, axis=-1) * mprec[..., 1:], axis=-1)


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices visiting predictions by descending score; equal scores: the later row first."""
    return np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")[::-1]


@dataclass(frozen=True)
class _Matching:
    true_positive: np.ndarray  # (K, P) bool, in the predictions' row order
    gt_matched: np.ndarray  # (K, G) bool: taken by a prediction at that threshold
    best_iou: np.ndarray  # (G,) per ground truth, over all its candidates
    best_iou_top: dict[int, np.ndarray]  # n -> (G,) best over the top-n candidates
    pair_iou_sum: float
    pair_count: int


def _match(gt: Instances, pred: Instances, tious: np.ndarray, top_n: Iterable[int]) -> _Matching:
    """Greedy ActivityNet matching of every (class, video) group at once.

    Groups are independent (a ground truth can only be taken by predictions of its class and video), and a
    group's predictions are visited in the global score order restricted to it. So step r handles the r-th
    prediction of every group that has one; ordering groups by size makes the active ones a prefix.
    """
    n_thr, n_pred, n_gt = len(tious), len(pred), len(gt)
    top_n = sorted({int(n) for n in top_n})
    true_positive = np.zeros((n_thr, n_pred), dtype=bool)
    best = np.zeros(n_gt)
    snapshots: dict[int, np.ndarray] = {}
    pair_sum, pair_count = 0.0, 0

    n_videos = int(max(gt.video.max(initial=-1), pred.video.max(initial=-1))) + 1
    gt_key = gt.label * n_videos + gt.video
    pred_key = pred.label * n_videos + pred.video
    rank = np.empty(n_pred, dtype=np.int64)
    rank[score_order(pred.scores)] = np.arange(n_pred)

    gt_perm = np.argsort(gt_key, kind="stable")  # keeps file order inside a group
    gt_keys, gt_start, gt_count = np.unique(gt_key[gt_perm], return_index=True, return_counts=True)
    pred_perm = np.lexsort((rank, pred_key))
    pred_keys, pred_start, pred_count = np.unique(pred_key[pred_perm], return_index=True, return_counts=True)

    at = np.searchsorted(gt_keys, pred_keys).clip(max=max(len(gt_keys) - 1, 0))
    has_gt = (gt_keys[at] == pred_keys) if len(gt_keys) else np.zeros(len(pred_keys), dtype=bool)
    by_size = np.argsort(-pred_count[has_gt], kind="stable")
    g_gt_start = gt_start[at[has_gt]][by_size]
    g_gt_count = gt_count[at[has_gt]][by_size]
    g_pred_start = pred_start[has_gt][by_size]
    g_pred_count = pred_count[has_gt][by_size]

    # Flattened (group, ground truth) elements, group-major; any prefix of groups is a prefix of elements.
    block_start = np.cumsum(g_gt_count) - g_gt_count
    block_end = block_start + g_gt_count
    n_elem = int(g_gt_count.sum())
    elem_group = np.repeat(np.arange(len(g_gt_count)), g_gt_count)
    elem_local = np.arange(n_elem) - block_start[elem_group]  # index inside the group's ground truths
    elem_gt = gt_perm[g_gt_start[elem_group] + elem_local]  # row in `gt`
    elem_gt_segments = gt.segments[elem_gt]
    locked = np.zeros((n_thr, n_gt), dtype=bool)
    thresholds = np.asarray(tious, dtype=np.float64)[:, None]
    neg_sizes = -g_pred_count  # ascending

    for r in range(int(g_pred_count.max(initial=0))):
        n_active = int(np.searchsorted(neg_sizes, -r, side="left"))  # groups with more than r predictions
        n_e = int(block_end[n_active - 1])
        pred_rows = pred_perm[g_pred_start[:n_active] + r]
        groups = elem_group[:n_e]
        rows = elem_gt[:n_e]
        iou = _paired_iou(pred.segments[pred_rows][groups], elem_gt_segments[:n_e])

        pair_sum += float(iou.sum())
        pair_count += n_e
        best[rows] = np.maximum(best[rows], iou)
        if r + 1 in top_n:
            snapshots[r + 1] = best.copy()

        candidate = (iou >= thresholds) & ~locked[:, rows]
        masked = np.where(candidate, iou, -1.0)
        starts = block_start[:n_active]
        group_max = np.maximum.reduceat(masked, starts, axis=1)
        is_best = candidate & (masked == group_max[:, groups])
        choice = np.maximum.reduceat(np.where(is_best, elem_local[:n_e], -1), starts, axis=1)
        hit = choice >= 0
        thr_idx, grp_idx = np.nonzero(hit)
        locked[thr_idx, rows[starts[grp_idx] + choice[thr_idx, grp_idx]]] = True
        true_positive[:, pred_rows] = hit

    for n in top_n:
        snapshots.setdefault(n, best.copy())  # no group has n predictions: the top n are all of them
    return _Matching(true_positive, locked, best, snapshots, pair_sum, pair_count)


def match_detections(gt: Instances, pred: Instances, tious: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The matching mAP is computed from: `(K, P)` true positives in the predictions' row order and `(K, G)`
    ground truths taken, per threshold (for error diagnosis: which predictions are false positives, which
    instances are missed)."""
    if pred.scores is None:
        raise ValueError("predictions need scores")
    matching = _match(gt, pred, np.asarray(tious, dtype=np.float64).reshape(-1), ())
    return matching.true_positive, matching.gt_matched


def score_detections(
    gt: Instances,
    pred: Instances,
    num_classes: int,
    tious: Sequence[float],
    recall_at: Sequence[int] = (1, 5),
    recall_ious: Sequence[float] = (0.5, 0.7),
) -> DetectionScores:
    """All metrics of the module docstring for ground truth and predictions that share video/class indices.

    Callers drop predictions of videos or classes they do not score beforehand: every row of `pred` counts.
    """
    if pred.scores is None:
        raise ValueError("predictions need scores")
    tious = np.asarray(tious, dtype=np.float64).reshape(-1)
    if len(tious) == 0:
        raise ValueError("at least one tIoU threshold is needed")
    for inst in (gt, pred):
        if len(inst) and inst.label.max() >= num_classes:
            raise ValueError(f"a label index is >= num_classes ({num_classes})")
    if any(int(n) < 1 for n in recall_at):
        raise ValueError("recall_at values must be >= 1")

    matching = _match(gt, pred, tious, recall_at)
    gt_per_class = np.bincount(gt.label, minlength=num_classes)
    pred_per_class = np.bincount(pred.label, minlength=num_classes)

    ap = np.full((num_classes, len(tious)), np.nan)
    order = score_order(pred.scores)
    by_class = order[np.argsort(pred.label[order], kind="stable")]  # class-major, score order inside
    class_end = np.cumsum(pred_per_class)
    for c in np.flatnonzero(gt_per_class):
        rows = by_class[class_end[c] - pred_per_class[c] : class_end[c]]
        if len(rows) == 0:
            ap[c] = 0.0
            continue
        tp = matching.true_positive[:, rows]
        tp_cum = np.cumsum(tp, axis=1, dtype=np.float64)
        fp_cum = np.cumsum(~tp, axis=1, dtype=np.float64)
        ap[c] = interpolated_average_precision(tp_cum / (tp_cum + fp_cum), tp_cum / gt_per_class[c])

    recall = {}
    for n in recall_at:
        for m in recall_ious:
            hits = matching.best_iou_top[int(n)] >= m
            recall[(int(n), float(m))] = float(hits.mean()) if len(hits) else float("nan")

    return DetectionScores(
        tious=tious,
        ap=ap,
        gt_per_class=gt_per_class,
        predictions_per_class=pred_per_class,
        average_tiou=matching.pair_iou_sum / matching.pair_count if matching.pair_count else float("nan"),
        mean_best_tiou=float(matching.best_iou.mean()) if len(gt) else float("nan"),
        recall=recall,
    )


@dataclass(frozen=True)
class GroundingScores:
    """Temporal grounding (Charades-STA): one query per (video, sentence, moment)."""

    recall: dict[tuple[int, float], float]  # (n, IoU m) -> R@n,IoU=m: the share of queries hit in their top n
    mean_iou: float  # the mean over queries of the top-1 moment's IoU (0 for a query with no moment)
    queries: int


def score_grounding(moments: list[np.ndarray], ranked: list[np.ndarray], ns: Iterable[int] = (1, 5),
                    tious: Iterable[float] = (0.5, 0.7)) -> GroundingScores:
    """``moments[q]`` the `(2,)` ground-truth moment of query q, ``ranked[q]`` its predicted moments `(M, 2)`,
    best first. A query counts for R@n,IoU=m when one of its first n moments has IoU >= m with its moment."""
    ns, tious = sorted(set(ns)), sorted(set(tious))
    if len(moments) != len(ranked):
        raise ValueError(f"{len(moments)} queries but {len(ranked)} prediction lists")
    if not moments:
        raise ValueError("no query to score")
    hits = np.zeros((len(moments), len(ns), len(tious)), dtype=bool)
    top1 = np.zeros(len(moments))
    for q, (moment, predicted) in enumerate(zip(moments, ranked, strict=True)):
        ious = segment_iou(moment, predicted)[0]
        if ious.size:
            top1[q] = ious[0]
        for i, n in enumerate(ns):
            best = ious[:n].max() if ious.size else 0.0
            hits[q, i] = [best >= m for m in tious]
    recall = {(n, m): float(hits[:, i, j].mean()) for i, n in enumerate(ns) for j, m in enumerate(tious)}
    return GroundingScores(recall, float(top1.mean()), len(moments))
