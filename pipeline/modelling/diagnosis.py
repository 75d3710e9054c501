"""DETAD-style error diagnosis (Alwassel et al., ECCV 2018) of temporal localization results.

- **False-positive profile** at one tIoU: of each class, its top ``limit_factor`` x G predictions (G: the class's
  ground-truth instances; DETAD uses 10 G), matched as mAP matches them (``grizal.metrics.match_detections``);
  each prediction is a true positive or the error of the ground truth (any class) in its video it overlaps most:
  tIoU >= the threshold: double detection (same label) or wrong label; tIoU >= ``min_tiou`` (0.1): localization
  error (same label) or confusion; else (or no ground truth in its video) background. Per class, overall, and
  per rank block (the predictions ranked 1..G, G+1..2G, ... of each class: DETAD's plot).
- **False negatives** at the same tIoU, matched against every prediction: the share of instances missed per bin
  of their length (seconds), coverage (length / video duration) and number of instances (of the same class in
  the video), with DETAD's bins (``BINS``; THUMOS14's for short videos, ActivityNet's for long ones).
- **Removing each error type**: the mAP of those predictions at the tIoU, and what it gains when the false
  positives of one type are dropped.
- **DETAD's input files**: ``detad_export`` writes the ground truth with DETAD's per-instance characteristics and
  the predictions DETAD's reader accepts (only classes and videos of that ground truth).

Differences from DETAD's code: one threshold (DETAD averages ActivityNet's ten for its plots); false negatives
use plain matching (DETAD drops predictions whose normalized precision is <= 0.05 first); no "removing error
impact" panel. No I/O here but ``write_diagnosis`` and ``detad_export``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grizal.metrics import Instances, interpolated_average_precision, match_detections, score_order, segment_iou
from pipeline.common import atomic_write_bytes, atomic_write_json, atomic_write_text
from pipeline.modelling.scoring import GroundTruth, Predictions, write_predictions

ERROR_TYPES = ("true positive", "double detection", "wrong label", "localization error", "confusion", "background")
TRUE_POSITIVE, DOUBLE, WRONG_LABEL, LOCALIZATION, CONFUSION, BACKGROUND = range(6)
LIMIT_FACTOR = 10
MIN_TIOU = 0.1

# DETAD's bins (pandas.cut: right-closed, the lowest edge included): characteristic -> (edges, labels).
BINS: dict[str, dict[str, tuple[tuple[float, ...], tuple[str, ...]]]] = {
    "thumos14": {
        "length": ((0, 3, 6, 12, 18, np.inf), ("XS", "S", "M", "L", "XL")),
        "coverage": ((0, 0.02, 0.04, 0.06, 0.08, 1), ("XS", "S", "M", "L", "XL")),
        "num-instances": ((-1, 1, 40, 80, np.inf), ("XS", "S", "M", "L")),
    },
    "activitynet": {
        "length": ((0, 30, 60, 120, 180, np.inf), ("XS", "S", "M", "L", "XL")),
        "coverage": ((0, 0.2, 0.4, 0.6, 0.8, 1), ("XS", "S", "M", "L", "XL")),
        "num-instances": ((-1, 1, 4, 8, np.inf), ("XS", "S", "M", "L")),
    },
}


def bins_for(dataset: str) -> str:
    """ActivityNet's bins for ActivityNet (minutes-long actions); THUMOS14's (seconds) for every other set."""
    return "activitynet" if dataset == "activitynet" else "thumos14"


def bin_of(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The bin index of each value as ``pandas.cut(include_lowest=True)`` gives it; -1 outside the edges or NaN."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(edges, values, side="left") - 1
    index[values == edges[0]] = 0
    index[~((values >= edges[0]) & (values <= edges[-1]))] = -1
    return index


def characteristics(gt: GroundTruth) -> dict[str, np.ndarray]:
    """Per instance: ``length`` (s), ``coverage`` (length / its video's duration; NaN without one) and
    ``num-instances`` (instances of its class in its video), as DETAD's annotation files define them."""
    length = gt.segments[:, 1] - gt.segments[:, 0]
    durations = np.array([gt.videos[v].duration or np.nan for v in gt.video], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        coverage = np.where(durations > 0, length / durations, np.nan)
    keys = list(zip(gt.video, gt.label, strict=True))
    count: dict[tuple[str, str], int] = {}
    for key in keys:
        count[key] = count.get(key, 0) + 1
    return {"length": length, "coverage": coverage,
            "num-instances": np.array([count[k] for k in keys], dtype=np.float64)}


def _indexed(gt: GroundTruth, preds: Predictions, classes: Iterable[str] | None) -> tuple:
    """Ground truth and predictions of the scored classes, as ``Instances`` over shared indices."""
    names = sorted(set(gt.label) if classes is None else set(classes) & set(gt.label))
    class_index = {c: i for i, c in enumerate(names)}
    videos = list(gt.videos)
    video_index = {v: i for i, v in enumerate(videos)}
    gt_rows = np.array([i for i, c in enumerate(gt.label) if c in class_index], dtype=np.int64)
    gt_inst = Instances([video_index[gt.video[i]] for i in gt_rows], [class_index[gt.label[i]] for i in gt_rows],
                        gt.segments[gt_rows])
    keep = np.array([v in video_index and c in class_index for v, c in zip(preds.video, preds.label, strict=True)],
                    dtype=bool).reshape(-1)
    rows = np.flatnonzero(keep)
    pred_inst = Instances([video_index[preds.video[i]] for i in rows], [class_index[preds.label[i]] for i in rows],
                          preds.segments[rows], preds.scores[rows])
    return names, gt_rows, gt_inst, pred_inst


def _limited(gt: Instances, pred: Instances, n_classes: int, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``pred`` among its class's top ``factor`` x G (score order) and each one's rank in its class."""
    gt_count = np.bincount(gt.label, minlength=n_classes)
    order = score_order(pred.scores)
    by_class = order[np.argsort(pred.label[order], kind="stable")]
    labels = pred.label[by_class]
    first = np.searchsorted(labels, labels, side="left")
    rank = np.arange(len(by_class)) - first
    keep = rank < (gt_count[labels] * factor).astype(np.int64)
    return by_class[keep], rank[keep]


def error_types(gt: Instances, pred: Instances, true_positive: np.ndarray, tiou: float,
                min_tiou: float = MIN_TIOU) -> np.ndarray:
    """DETAD's type (an index of ``ERROR_TYPES``) of each prediction given which ones are true positives."""
    types = np.where(true_positive, TRUE_POSITIVE, BACKGROUND)
    for v in np.unique(pred.video[~true_positive]):
        rows = np.flatnonzero((pred.video == v) & ~true_positive)
        in_video = np.flatnonzero(gt.video == v)
        if len(in_video) == 0:
            continue  # background
        iou = segment_iou(pred.segments[rows], gt.segments[in_video])
        best = iou.argmax(axis=1)  # the first of equal tIoUs, in file order, as DETAD's argmax
        top = iou[np.arange(len(rows)), best]
        same = gt.label[in_video[best]] == pred.label[rows]
        types[rows] = np.select([top >= tiou, top >= min_tiou], [np.where(same, DOUBLE, WRONG_LABEL),
                                                                  np.where(same, LOCALIZATION, CONFUSION)], BACKGROUND)
    return types


def _mean_ap(true_positive: np.ndarray, labels: np.ndarray, gt_count: np.ndarray, keep: np.ndarray) -> float:
    """mAP at the diagnosis tIoU over the classes with ground truth, of the kept rows (class-major, score order
    inside a class, as ``_limited`` returns them)."""
    aps = []
    for c in np.flatnonzero(gt_count):
        hits = true_positive[keep & (labels == c)]
        if len(hits) == 0:
            aps.append(0.0)
            continue
        tp, fp = np.cumsum(hits, dtype=np.float64), np.cumsum(~hits, dtype=np.float64)
        aps.append(float(interpolated_average_precision(tp / (tp + fp), tp / gt_count[c])))
    return float(np.mean(aps)) if aps else float("nan")


def _counts(types: np.ndarray) -> dict[str, int]:
    numbers = np.bincount(types, minlength=len(ERROR_TYPES))
    return {name: int(n) for name, n in zip(ERROR_TYPES, numbers, strict=True)}


def diagnose(gt: GroundTruth, preds: Predictions, tiou: float = 0.5, classes: Iterable[str] | None = None,
             bins: str = "thumos14", limit_factor: float = LIMIT_FACTOR, min_tiou: float = MIN_TIOU) -> dict[str, Any]:
    """The false-positive profile and false negatives (module docstring) as a JSON-ready dict. ``gt`` holds
    the scored videos; ``classes`` (default: every annotated one) the scored classes."""
    names, gt_rows, gt_inst, pred_inst = _indexed(gt, preds, classes)
    rows, rank = _limited(gt_inst, pred_inst, len(names), limit_factor)
    limited = Instances(pred_inst.video[rows], pred_inst.label[rows], pred_inst.segments[rows],
                        pred_inst.scores[rows])
    tp, _ = match_detections(gt_inst, limited, [tiou])
    types = error_types(gt_inst, limited, tp[0], tiou, min_tiou)
    gt_count = np.bincount(gt_inst.label, minlength=len(names))
    per_class = [{"class": name, "gt": int(gt_count[c]), "predictions": int((limited.label == c).sum()),
                  "counts": _counts(types[limited.label == c])} for c, name in enumerate(names)]
    everything = np.ones(len(types), dtype=bool)
    base = _mean_ap(tp[0], limited.label, gt_count, everything)
    # Removing a type of false positive leaves the matching of the others unchanged: they took no instance.
    gain = {t: _mean_ap(tp[0], limited.label, gt_count, types != i) - base
            for i, t in enumerate(ERROR_TYPES) if i != TRUE_POSITIVE}
    block = (rank // np.maximum(gt_count[limited.label], 1)).astype(np.int64)
    by_rank = [{"top": f"{g + 1}G", "predictions": int((block == g).sum()), "counts": _counts(types[block == g])}
               for g in range(int(np.ceil(limit_factor)))]
    _, matched = match_detections(gt_inst, pred_inst, [tiou])
    missed = ~matched[0]
    traits = characteristics(_subset(gt, gt_rows))
    false_negatives = {}
    for trait, (edges, labels) in BINS[bins].items():
        where = bin_of(traits[trait], edges)
        false_negatives[trait] = [
            {"bin": label, "range": f"({_edge(edges[i])}, {_edge(edges[i + 1])}]", "gt": int((where == i).sum()),
             "missed": int((missed & (where == i)).sum())} for i, label in enumerate(labels)]
        outside = int((where < 0).sum())
        if outside:
            false_negatives[trait].append({"bin": "n/a", "range": "outside the bins or unknown", "gt": outside,
                                           "missed": int((missed & (where < 0)).sum())})
    return {"tIoU": tiou, "min_tIoU": min_tiou, "limit_factor": limit_factor, "bins": bins,
            "types": list(ERROR_TYPES),
            "false_positives": {"predictions": len(limited), "counts": _counts(types), "per_class": per_class,
                                "by_rank": by_rank, "mAP": base, "mAP_gain_without": gain},
            "false_negatives": {"gt": len(gt_rows), "missed": int(missed.sum()), "by": false_negatives}}


def _edge(value: float) -> str:
    return "inf" if np.isinf(value) else f"{value:g}"


def of_subset(gt: GroundTruth, subset: str | None) -> GroundTruth:
    """The videos of one subset (all with None) and their instances."""
    if subset is None:
        return gt
    videos = {v: info for v, info in gt.videos.items() if info.subset == subset}
    rows = np.array([i for i, v in enumerate(gt.video) if v in videos], dtype=np.int64)
    return GroundTruth(gt.source, gt.format, videos, [gt.video[i] for i in rows], [gt.label[i] for i in rows],
                       gt.segments[rows])


def _subset(gt: GroundTruth, rows: np.ndarray) -> GroundTruth:
    return GroundTruth(gt.source, gt.format, gt.videos, [gt.video[i] for i in rows], [gt.label[i] for i in rows],
                       gt.segments[rows])


# --------------------------------------------------------------------------------------------- outputs


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def format_diagnosis(diagnosis: Mapping[str, Any], report: Mapping[str, Any] | None = None) -> str:
    """The diagnosis as markdown: the profile (overall, by rank, per class), false negatives by bin, and the
    two tIoU averages of ``report`` (an ``evaluate_detection`` report) when given."""
    fp, fn = diagnosis["false_positives"], diagnosis["false_negatives"]
    head = "| {} | G | predictions | " + " | ".join(f"{t} (%)" for t in ERROR_TYPES) + " |"
    rule = "|---|---:|---:|" + "---:|" * len(ERROR_TYPES)

    def row(name: str, gt: Any, entry: Mapping[str, Any]) -> str:
        cells = [_pct(entry["counts"][t], entry["predictions"]) for t in ERROR_TYPES]
        return f"| {name} | {gt} | {entry['predictions']} | " + " | ".join(cells) + " |"

    tiou, factor = diagnosis["tIoU"], diagnosis["limit_factor"]
    lines = [f"# Error diagnosis (DETAD) at tIoU {tiou:g}", "",
             f"## False-positive profile: each class's top {factor:g}G predictions (G: its instances)", "",
             "A prediction that is not a true positive takes the error of the ground truth (any class) in its video "
             f"it overlaps most: tIoU >= {tiou:g}: double detection (same label) or wrong label; tIoU >= "
             f"{diagnosis['min_tIoU']:g}: localization error (same label) or confusion; else background.", "",
             head.format("class"), rule, row("**all**", fn["gt"], fp)]
    lines += [row(r["class"].replace("|", "\\|"), r["gt"], r) for r in fp["per_class"]]
    lines += ["", "### By rank (the predictions ranked (g-1)G+1 .. gG in each class)", "", head.format("top"), rule]
    lines += [row(r["top"], "", r) for r in fp["by_rank"]]
    lines += ["", f"### Removing each error type (mAP at tIoU {tiou:g} of these predictions: "
                  f"{_pct_value(fp['mAP'])}%)", "", "| without | mAP gain (points) |", "|---|---:|"]
    lines += [f"| {t} | {100 * g:+.2f} |" for t, g in fp["mAP_gain_without"].items()]
    lines += ["", f"## False negatives at tIoU {tiou:g} (every prediction; {diagnosis['bins']} bins)", "",
              f"{fn['missed']} of {fn['gt']} instances missed ({_pct(fn['missed'], fn['gt'])}%).", "",
              "| characteristic | bin | range | instances | missed | missed (%) |", "|---|---|---|---:|---:|---:|"]
    for trait, rows in fn["by"].items():
        lines += [f"| {trait} | {r['bin']} | {r['range']} | {r['gt']} | {r['missed']} | {_pct(r['missed'], r['gt'])} |"
                  for r in rows]
    if report is not None:
        lines += ["", "## tIoU averages", "",
                  f"- average tIoU (the paper's mIoU): {_pct_value(report.get('average_tIoU'))}% — the mean over "
                  "every (prediction, ground truth) pair of one class in one video, zero-overlap pairs included; "
                  "it falls as a method adds predictions, good ones included.",
                  f"- mean best tIoU: {_pct_value(report.get('mean_best_tIoU'))}% — per instance, its best tIoU with "
                  "a prediction of its class (0 without one), averaged over instances; more predictions never "
                  "lower it."]
    return "\n".join(lines) + "\n"


def _pct_value(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def diagnosis_figure(diagnosis: Mapping[str, Any]):
    """DETAD's two figures side by side: the profile per rank block (stacked, %) and the share missed per bin."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colors = ("#33a02c", "#b2df8a", "#1f78b4", "#fb9a99", "#e31a1c", "#a6cee3")  # DETAD's
    fig = Figure(figsize=(15, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    left, middle, right = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 0.6, 1.3]})
    blocks = diagnosis["false_positives"]["by_rank"]
    x = np.arange(len(blocks))
    bottom = np.zeros(len(blocks))
    for t, color in zip(ERROR_TYPES, colors, strict=True):
        share = np.array([100 * b["counts"][t] / b["predictions"] if b["predictions"] else 0.0 for b in blocks])
        left.bar(x, share, bottom=bottom, color=color, label=t)
        bottom += share
    left.set_xticks(x, [b["top"] for b in blocks])
    left.set_ylim(0, 100)
    left.set_xlabel("top predictions")
    left.set_ylabel("error breakdown (%)")
    left.set_title(f"False-positive profile, tIoU {diagnosis['tIoU']:g}")
    left.legend(fontsize=7, loc="lower right")
    gains = diagnosis["false_positives"]["mAP_gain_without"]
    middle.bar(np.arange(len(gains)), [100 * g for g in gains.values()], color=colors[1:])
    middle.set_xticks(np.arange(len(gains)), list(gains), rotation=45, ha="right", fontsize=7)
    middle.set_ylabel("mAP gain (points)")
    middle.set_title("Removing each error type")
    ticks, labels, position = [], [], 0
    for trait, rows in diagnosis["false_negatives"]["by"].items():
        rows = [r for r in rows if r["bin"] != "n/a"]
        rates = [100 * r["missed"] / r["gt"] if r["gt"] else 0.0 for r in rows]
        where = np.arange(position, position + len(rows))
        right.bar(where, rates, label=trait)
        ticks += list(where)
        labels += [r["bin"] for r in rows]
        position += len(rows) + 1
    right.set_xticks(ticks, labels)
    right.set_ylim(0, 100)
    right.set_ylabel("false negatives (%)")
    right.set_title("Missed instances by length, coverage, # instances")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def detad_export(gt: GroundTruth, preds: Predictions, classes: Iterable[str] | None, out_dir: str | os.PathLike,
                 subset: str = "validation") -> None:
    """DETAD's inputs: ``detad_ground_truth.json`` (ActivityNet layout with ``version`` and ``taxonomy``, each
    annotation with ``length``, ``coverage``, ``num-instances``) and ``detad_predictions.json`` (the predictions of
    its videos and classes: DETAD's reader stops on any other label). ``subset`` is what DETAD's ``--subset``
    must then say."""
    out_dir = Path(out_dir)
    keep = set(gt.label) if classes is None else set(classes) & set(gt.label)
    rows = np.array([i for i, c in enumerate(gt.label) if c in keep], dtype=np.int64)
    scoped = _subset(gt, rows)
    traits = characteristics(scoped)
    database: dict[str, Any] = {vid: {"subset": subset, "duration": info.duration, "annotations": []}
                                for vid, info in gt.videos.items()}
    for i, (vid, label) in enumerate(zip(scoped.video, scoped.label, strict=True)):
        coverage = traits["coverage"][i]
        database[vid]["annotations"].append({
            "segment": [float(x) for x in scoped.segments[i]], "label": label,
            "length": float(traits["length"][i]), "coverage": None if np.isnan(coverage) else float(coverage),
            "num-instances": int(traits["num-instances"][i]),
        })
    atomic_write_json(out_dir / "detad_ground_truth.json", {"version": "grizal", "taxonomy": [], "database": database})
    results: dict[str, list[dict[str, Any]]] = {}
    for vid, label, segment, score in zip(preds.video, preds.label, preds.segments, preds.scores, strict=True):
        if vid in database and label in keep:
            results.setdefault(vid, []).append({"label": label, "score": float(score),
                                                "segment": [float(segment[0]), float(segment[1])]})
    write_predictions(out_dir / "detad_predictions.json", results)


def write_diagnosis(out_dir: str | os.PathLike, gt: GroundTruth, preds: Predictions, classes: Iterable[str] | None,
                    tiou: float, bins: str, report: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Diagnose and write ``diagnosis.md``, ``diagnosis.json``, ``diagnosis.png`` and DETAD's two input files."""
    out_dir = Path(out_dir)
    diagnosis = diagnose(gt, preds, tiou, classes, bins)
    atomic_write_json(out_dir / "diagnosis.json", diagnosis)
    atomic_write_text(out_dir / "diagnosis.md", format_diagnosis(diagnosis, report))
    buffer = io.BytesIO()
    diagnosis_figure(diagnosis).savefig(buffer, format="png")
    atomic_write_bytes(out_dir / "diagnosis.png", buffer.getvalue())
    detad_export(gt, preds, classes, out_dir)
    return diagnosis
