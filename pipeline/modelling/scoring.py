"""Scoring temporal localization results: ground truth and ActivityNet-format predictions in, metrics out.

The one owner of the predictions and metrics files: ``load_ground_truth`` (ActivityNet, a prepare index or
THUMOS/BMN JSON, or an ``Index`` directly), ``load_predictions``, ``evaluate_detection``, ``format_table``,
``write_metrics``, ``write_per_class``, ``write_predictions``. The DVC ``evaluate`` stage and the scorer CLI
(``python -m pipeline.score``) both use them; the metric definitions live in ``grizal.metrics``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grizal.metrics import Instances, score_detections
from pipeline.common import UserError, atomic_write_json, atomic_write_text, read_json
from pipeline.data.index import Index
from pipeline.modelling.baselines import BASELINES

ACTIVITYNET_TIOUS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
THUMOS_TIOUS = (0.3, 0.4, 0.5, 0.6, 0.7)
RECALL_AT = (1, 5)
RECALL_IOUS = (0.5, 0.7)

# THUMOS14 BMN-style files carry no subset field; the video name says it.
_THUMOS_NAME = re.compile(r"^video_(validation|test)_\d+$")


@dataclass(frozen=True)
class VideoInfo:
    subset: str | None
    duration: float | None


@dataclass(frozen=True)
class GroundTruth:
    """Annotated instances in file order, plus every video of the file (also those without instances)."""

    source: str
    format: str  # "activitynet" | "index" | "bmn"
    videos: dict[str, VideoInfo]
    video: list[str]
    label: list[str]
    segments: np.ndarray  # (N, 2) seconds


@dataclass(frozen=True)
class Predictions:
    """Predicted segments in file order (the order decides score ties)."""

    source: str
    video: list[str]
    label: list[str]
    segments: np.ndarray  # (N, 2) seconds
    scores: np.ndarray  # (N,)


# ----------------------------------------------------------------------------------------------- loading


def _source(source: str | os.PathLike | Mapping, name: str | None, what: str) -> tuple[Any, str]:
    if isinstance(source, Mapping):
        return source, name or f"<{what}>"
    return read_json(source), str(source)


def _number(value: Any, where: str, at: str, what: str) -> float:
    # Numeric strings are accepted: THUMOS/BMN annotation files store times as text.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UserError(where, f"{at}: {what} {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise UserError(where, f"{at}: {what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise UserError(where, f"{at}: {what} {value!r} is not finite")
    return number


def _segment(value: Any, where: str, at: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise UserError(where, f"{at}: segment must be [start, end], got {value!r}")
    start = _number(value[0], where, at, "segment start")
    end = _number(value[1], where, at, "segment end")
    if start > end:
        raise UserError(where, f"{at}: segment start {start:g} is after its end {end:g}")
    return start, end


def _label(value: Any, where: str, at: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(where, f"{at}: label must be a non-empty string, got {value!r}")
    return value


def _mapping(value: Any, where: str, at: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise UserError(where, f"{at}: expected a JSON object, got {type(value).__name__}")
    return value


def _annotations(value: Any, where: str, at: str) -> list:
    if not isinstance(value, list):
        raise UserError(where, f"{at}: 'annotations' must be a list")
    return value


def _optional_duration(entry: Mapping, key: str, where: str, at: str) -> float | None:
    return None if entry.get(key) is None else _number(entry[key], where, at, key)


def load_ground_truth(source: str | os.PathLike | Mapping, *, name: str | None = None) -> GroundTruth:
    """Read ground truth in any of the three accepted layouts (detected from the content):

    - ActivityNet: `{"database": {vid: {"subset", "duration", "annotations": [{"segment", "label"}]}}}`;
    - the prepare stage's index: `{"schema", "videos": {vid: {"subset", "duration", "segments":
      [{"start", "end", "label"}]}}}`;
    - THUMOS/BMN style: `{vid: {"duration_second", "annotations": [{"segment": ["s", "e"], "label"}]}}`
      (subset from a "subset" field, else from a THUMOS name such as `video_test_0000004`).
    """
    data, where = _source(source, name, "ground truth")
    if not isinstance(data, Mapping) or not data:
        raise UserError(where, "ground truth must be a non-empty JSON object")
    videos: dict[str, VideoInfo] = {}
    inst_video: list[str] = []
    inst_label: list[str] = []
    inst_segments: list[tuple[float, float]] = []

    def add(vid: str, label: Any, segment: Any, at: str) -> None:
        inst_label.append(_label(label, where, at))
        inst_segments.append(_segment(segment, where, at))
        inst_video.append(vid)

    if "database" in data:
        fmt = "activitynet"
        for vid, entry in _mapping(data["database"], where, "database").items():
            at = f"database[{vid!r}]"
            entry = _mapping(entry, where, at)
            videos[vid] = VideoInfo(entry.get("subset"), _optional_duration(entry, "duration", where, at))
            for i, ann in enumerate(_annotations(entry.get("annotations", []), where, at)):
                ann_at = f"{at}.annotations[{i}]"
                ann = _mapping(ann, where, ann_at)
                add(vid, ann.get("label"), ann.get("segment"), ann_at)
    elif "videos" in data and "schema" in data:
        fmt = "index"
        for vid, entry in _mapping(data["videos"], where, "videos").items():
            at = f"videos[{vid!r}]"
            entry = _mapping(entry, where, at)
            videos[vid] = VideoInfo(entry.get("subset"), _optional_duration(entry, "duration", where, at))
            segments = entry.get("segments", [])
            if not isinstance(segments, list):
                raise UserError(where, f"{at}: 'segments' must be a list")
            for i, seg in enumerate(segments):
                seg_at = f"{at}.segments[{i}]"
                seg = _mapping(seg, where, seg_at)
                add(vid, seg.get("label"), [seg.get("start"), seg.get("end")], seg_at)
    elif all(isinstance(v, Mapping) and "annotations" in v for v in data.values()):
        fmt = "bmn"
        for vid, entry in data.items():
            at = f"[{vid!r}]"
            thumos = _THUMOS_NAME.match(vid)
            subset = entry.get("subset", thumos.group(1) if thumos else None)
            duration = _optional_duration(entry, "duration_second", where, at)
            videos[vid] = VideoInfo(subset, duration)
            for i, ann in enumerate(_annotations(entry["annotations"], where, at)):
                ann_at = f"{at}.annotations[{i}]"
                ann = _mapping(ann, where, ann_at)
                add(vid, ann.get("label"), ann.get("segment"), ann_at)
    else:
        raise UserError(
            where,
            "unrecognised ground-truth layout: expected ActivityNet {'database': ...}, the prepare index "
            "{'schema', 'videos'} or a THUMOS/BMN-style {video: {'duration_second', 'annotations'}} mapping",
        )
    segments = np.asarray(inst_segments, dtype=np.float64).reshape(-1, 2)
    return GroundTruth(where, fmt, videos, inst_video, inst_label, segments)


def ground_truth_of(index: Index, ids: Iterable[str], classes: Iterable[str]) -> GroundTruth:
    """The instances of ``classes`` in the videos ``ids`` of a prepare index, read directly from it."""
    keep = set(classes)
    videos: dict[str, VideoInfo] = {}
    inst_video: list[str] = []
    inst_label: list[str] = []
    inst_segments: list[tuple[float, float]] = []
    for vid in ids:
        entry = index.videos[vid]
        videos[vid] = VideoInfo("validation", float(entry.duration))
        for seg in entry.segments:
            if seg.label in keep:
                inst_video.append(vid)
                inst_label.append(seg.label)
                inst_segments.append((float(seg.start), float(seg.end)))
    segments = np.asarray(inst_segments, dtype=np.float64).reshape(-1, 2)
    return GroundTruth("ground truth", "index", videos, inst_video, inst_label, segments)


def load_predictions(source: str | os.PathLike | Mapping, *, name: str | None = None) -> Predictions:
    """Read an ActivityNet result file `{"results": {vid: [{"label", "score", "segment": [s, e]}]}}`."""
    data, where = _source(source, name, "predictions")
    if not isinstance(data, Mapping) or "results" not in data:
        raise UserError(where, "not an ActivityNet result file: expected a JSON object with a 'results' key")
    results = _mapping(data["results"], where, "results")
    video: list[str] = []
    label: list[str] = []
    segments: list[tuple[float, float]] = []
    scores: list[float] = []
    for vid, items in results.items():
        if not isinstance(items, list):
            raise UserError(where, f"results[{vid!r}]: expected a list of predictions")
        for i, item in enumerate(items):
            at = f"results[{vid!r}][{i}]"
            if not isinstance(item, Mapping):
                raise UserError(where, f"{at}: expected an object with label, score and segment")
            score = item.get("score")
            if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
                raise UserError(where, f"{at}: score {score!r} is not a finite number")
            label.append(_label(item.get("label"), where, at))
            segments.append(_segment(item.get("segment"), where, at))
            scores.append(float(score))
            video.append(vid)
    return Predictions(
        where,
        video,
        label,
        np.asarray(segments, dtype=np.float64).reshape(-1, 2),
        np.asarray(scores, dtype=np.float64),
    )


# -------------------------------------------------------------------------------------------- evaluation


def threshold_key(tiou: float) -> str:
    """The JSON key of a threshold: 0.5 -> "0.5", 0.6000000000000001 -> "0.6"."""
    return f"{tiou:g}"


def recall_key(n: int, iou: float) -> str:
    return f"R@{n},IoU={iou:g}"


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _select_videos(gt: GroundTruth, subset: str | None, videos: Iterable[str] | None) -> list[str]:
    selected = list(gt.videos)
    if subset is not None:
        selected = [v for v in selected if gt.videos[v].subset == subset]
        if not selected:
            present = sorted({str(info.subset) for info in gt.videos.values()})
            raise UserError(
                gt.source, f"no video has subset {subset!r} (subsets present: {', '.join(present)})"
            )
    if videos is not None:
        wanted = list(dict.fromkeys(videos))
        missing = [v for v in wanted if v not in gt.videos]
        if missing:
            raise UserError(
                gt.source,
                f"{len(missing)} requested video(s) are not in the ground truth, e.g. {missing[0]!r}",
            )
        keep = set(selected)
        selected = [v for v in wanted if v in keep]
    return selected


@dataclass(frozen=True)
class Thresholds:
    """The tIoU thresholds of an evaluation: `averaged` make "average mAP" (their mean), `reported` are the
    mAP columns shown in tables. mAP is computed at both (their union); the ActivityNet protocol averages
    0.5:0.05:0.95 and papers show 0.5, 0.75 and 0.95."""

    averaged: tuple[float, ...]
    reported: tuple[float, ...]

    def __post_init__(self):
        for name in ("averaged", "reported"):
            values = tuple(float(t) for t in getattr(self, name))
            if not values:
                raise ValueError(f"{name} thresholds: at least one is needed")
            if len({threshold_key(t) for t in values}) != len(values):
                raise ValueError(f"{name} thresholds repeat: {values}")
            object.__setattr__(self, name, values)

    @classmethod
    def of(cls, tious: Sequence[float] | Thresholds, report_tious: Sequence[float] | None = None) -> Thresholds:
        if isinstance(tious, Thresholds):
            return tious if report_tious is None else cls(tious.averaged, tuple(report_tious))
        return cls(tuple(tious), tuple(tious if report_tious is None else report_tious))

    @property
    def scored(self) -> list[float]:
        """Every threshold mAP is computed at, ascending; a reported one equal (by key) to an averaged one is
        the averaged value."""
        by_key = {threshold_key(t): t for t in self.reported}
        by_key.update({threshold_key(t): t for t in self.averaged})
        return sorted(by_key.values())


def thresholds_from_params(cfg: Mapping[str, Any], where: str | os.PathLike | None = "params.yaml") -> Thresholds:
    """`evaluate.tious` (averaged) and optional `evaluate.report_tious` (shown; default: the same list)."""

    def read(key: str) -> tuple[float, ...]:
        value = cfg[key]
        if isinstance(value, str) or not isinstance(value, Sequence) or not value:
            raise UserError(where, f"evaluate.{key} must be a non-empty list of tIoU thresholds, got {value!r}")
        if any(isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 1 for t in value):
            raise UserError(where, f"evaluate.{key}: thresholds must be numbers in (0, 1], got {value!r}")
        keys = [threshold_key(float(t)) for t in value]
        if len(set(keys)) != len(keys):
            raise UserError(where, f"evaluate.{key}: a threshold is given twice in {value!r}")
        return tuple(float(t) for t in value)

    if "tious" not in cfg:
        raise UserError(where, "evaluate.tious is missing")
    averaged = read("tious")
    return Thresholds(averaged, read("report_tious") if cfg.get("report_tious") is not None else averaged)


def describe_tious(keys: Sequence[str]) -> str:
    """`["0.5", "0.55", ..., "0.95"]` -> "0.5:0.05:0.95"; thresholds that are not evenly spaced: "0.5,0.75"."""
    values = [float(k) for k in keys]
    steps = {threshold_key(b - a) for a, b in zip(values, values[1:], strict=False)}
    if len(values) >= 3 and len(steps) == 1 and values[1] > values[0]:
        return f"{keys[0]}:{steps.pop()}:{keys[-1]}"
    return ",".join(keys)


def evaluate_detection(
    gt: GroundTruth,
    preds: Predictions,
    tious: Sequence[float] | Thresholds,
    classes: Iterable[str] | None = None,
    *,
    subset: str | None = None,
    videos: Iterable[str] | None = None,
    recall_at: Sequence[int] = RECALL_AT,
    recall_ious: Sequence[float] = RECALL_IOUS,
    report_tious: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Score predictions against ground truth; returns the report dict (JSON-ready, NaN as None).

    `tious` are the thresholds averaged into `average_mAP` (or a `Thresholds`); `report_tious` the ones the
    tables show (default: `tious`). `report["mAP"]` holds mAP at both, `report["tIoUs"]` says which is which.
    Scored videos: the ground truth's videos, narrowed by `subset` and `videos`. Scored classes: `classes`,
    or else every label annotated in the scored videos. Predictions of other videos or classes are ignored
    and counted in `report["counts"]` (ActivityNet's `eval_detection.py` counts a prediction of a video
    outside the ground-truth subset as a false positive and stops on a label it does not know); a scored
    class with no instance in the scored videos has no AP and is listed in `report["classes_without_gt"]`
    (the ActivityNet code only knows classes from the ground truth). Metric definitions: `grizal.metrics`.
    """
    thresholds = Thresholds.of(tious, report_tious)
    tious = thresholds.scored
    keys = [threshold_key(t) for t in tious]
    averaged = np.isin(keys, [threshold_key(t) for t in thresholds.averaged])
    selected = _select_videos(gt, subset, videos)
    video_index = {v: i for i, v in enumerate(selected)}
    in_scope = np.fromiter((v in video_index for v in gt.video), dtype=bool, count=len(gt.video))
    scope_labels = sorted({lab for lab, keep in zip(gt.label, in_scope, strict=True) if keep})

    if classes is None:
        class_names = scope_labels
    else:
        class_names = sorted(dict.fromkeys(classes))
        known = set(gt.label)
        unknown = [c for c in class_names if c not in known]
        if unknown:
            raise UserError(
                gt.source,
                f"{len(unknown)} requested class(es) have no annotation anywhere in the ground truth, "
                f"e.g. {unknown[0]!r}",
            )
    if not class_names:
        raise UserError(gt.source, "no ground-truth instance to score in the selected videos")
    class_index = {c: i for i, c in enumerate(class_names)}

    gt_rows = [i for i, keep in enumerate(in_scope) if keep and gt.label[i] in class_index]
    if not gt_rows:
        raise UserError(gt.source, "none of the requested classes is annotated in the selected videos")
    gt_inst = Instances(
        [video_index[gt.video[i]] for i in gt_rows],
        [class_index[gt.label[i]] for i in gt_rows],
        gt.segments[gt_rows],
    )

    pred_video = np.fromiter((video_index.get(v, -1) for v in preds.video), np.int64, len(preds.video))
    pred_label = np.fromiter((class_index.get(c, -1) for c in preds.label), np.int64, len(preds.label))
    known_video = pred_video >= 0
    keep = known_video & (pred_label >= 0)
    pred_inst = Instances(pred_video[keep], pred_label[keep], preds.segments[keep], preds.scores[keep])

    scores = score_detections(gt_inst, pred_inst, len(class_names), tious, recall_at, recall_ious)
    scored = scores.scored_classes
    per_class = [
        {
            "class": name,
            "gt": int(scores.gt_per_class[c]),
            "predictions": int(scores.predictions_per_class[c]),
            "AP": {k: _nan_to_none(v) for k, v in zip(keys, scores.ap[c], strict=True)},
            "average_AP": _nan_to_none(float(scores.ap[c][averaged].mean())),
        }
        for c, name in enumerate(class_names)
    ]
    mean_ap = scores.mean_ap
    return {
        "mAP": {k: float(v) for k, v in zip(keys, mean_ap, strict=True)},
        "average_mAP": float(mean_ap[averaged].mean()),
        "tIoUs": {
            "averaged": [threshold_key(t) for t in thresholds.averaged],
            "reported": [threshold_key(t) for t in thresholds.reported],
        },
        "average_tIoU": _nan_to_none(scores.average_tiou),
        "mean_best_tIoU": _nan_to_none(scores.mean_best_tiou),
        "recall": {recall_key(n, m): _nan_to_none(v) for (n, m), v in scores.recall.items()},
        "counts": {
            "videos": len(selected),
            "classes": len(scored),
            "gt_instances": len(gt_rows),
            "predictions": int(keep.sum()),
            "predictions_ignored_unknown_video": int((~known_video).sum()),
            "predictions_ignored_unscored_class": int((known_video & (pred_label < 0)).sum()),
        },
        "classes_without_gt": [class_names[c] for c in np.flatnonzero(scores.gt_per_class == 0)],
        "per_class": per_class,
    }


# --------------------------------------------------------------------------------------------- outputs


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def reported_keys(report: Mapping[str, Any]) -> list[str]:
    """The mAP columns a table shows (every threshold for reports written before `tIoUs` existed)."""
    return list(report.get("tIoUs", {}).get("reported", report["mAP"]))


def averaged_keys(report: Mapping[str, Any]) -> list[str]:
    return list(report.get("tIoUs", {}).get("averaged", report["mAP"]))


def format_table(report: Mapping[str, Any]) -> str:
    """The summary as an aligned plain-text table, in percent like the paper's tables."""
    keys = reported_keys(report)
    extra = [("average tIoU (%)", report["average_tIoU"]), ("mean best tIoU (%)", report["mean_best_tIoU"])]
    extra += [(f"{k} (%)", v) for k, v in report["recall"].items()]
    first = max(len(k) for k, _ in extra)
    header = ["tIoU".ljust(first), *keys, "avg"]
    row = ["mAP (%)".ljust(first), *(_pct(report["mAP"][k]) for k in keys), _pct(report["average_mAP"])]
    widths = [max(len(a), len(b)) for a, b in zip(header, row, strict=True)]
    lines = [
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join(r.rjust(w) for r, w in zip(row, widths, strict=True)),
    ]
    lines += [f"{k.ljust(first)}  {_pct(v).rjust(widths[1])}" for k, v in extra]
    c = report["counts"]
    lines.append(
        f"scored {c['classes']} classes, {c['videos']} videos, {c['gt_instances']} ground-truth instances, "
        f"{c['predictions']} predictions"
    )
    lines.append(f"avg: mean mAP over tIoU {describe_tious(averaged_keys(report))}")
    return "\n".join(lines)


def metrics_json(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report without the per-class rows (those go to the per-class table)."""
    return {k: v for k, v in report.items() if k != "per_class"}


# What `dvc metrics show` and `dvc exp show` compare: per method, these two of its report, under short names; of
# the training-free baselines (no training changes them), the average mAP only, so the tables fit a terminal.
SUMMARY_KEYS = {"avg_mAP": "average_mAP", "avg_tIoU": "average_tIoU"}
BASELINE_SUMMARY_KEYS = {"avg_mAP": "average_mAP"}


def summary_keys(method: str) -> dict[str, str]:
    """The short name -> report key of what ``metrics_summary`` keeps of ``method``."""
    return BASELINE_SUMMARY_KEYS if method in BASELINES else SUMMARY_KEYS


def metrics_summary(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{method: {"avg_mAP", "avg_tIoU"}}`` of ``{method: metrics_json(report)}`` (null where a method was not
    scored; ``{"avg_mAP"}`` of a training-free baseline): the few numbers a person compares first, so DVC's tables
    fit a terminal. The full reports (mAP at every tIoU, recall, counts) stay in the evaluate stage's own
    metrics.json."""
    return {method: _grounding_summary(report) if "mIoU" in report
            else {short: report.get(full) for short, full in summary_keys(method).items()}
            for method, report in metrics.items()}


def _grounding_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """Charades-STA's per-query figures: R@1 at IoU 0.5 and 0.7 and the top-1 moment's mean IoU."""
    recall = report.get("recall", {})
    return {"R1_IoU0.5": recall.get("R@1,IoU=0.5"), "R1_IoU0.7": recall.get("R@1,IoU=0.7"), "mIoU": report["mIoU"]}


def write_metrics(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
    atomic_write_json(path, metrics_json(report))


def format_per_class(report: Mapping[str, Any], fmt: str) -> str:
    """Per-class AP as `csv` (fractions) or `markdown` (percent): the reported thresholds' columns, then the
    average over the averaged ones."""
    keys = reported_keys(report)
    rows = report["per_class"]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["class", "gt", "predictions", *(f"AP@{k}" for k in keys), "average_AP"])
        for r in rows:
            aps = ["" if r["AP"][k] is None else f"{r['AP'][k]:.6f}" for k in keys]
            avg = "" if r["average_AP"] is None else f"{r['average_AP']:.6f}"
            writer.writerow([r["class"], r["gt"], r["predictions"], *aps, avg])
        return buffer.getvalue()
    if fmt == "markdown":
        header = ["class", "gt", "predictions", *(f"AP@{k} (%)" for k in keys), "avg (%)"]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        for r in rows:
            cells = [r["class"].replace("|", "\\|"), str(r["gt"]), str(r["predictions"])]
            cells += [_pct(r["AP"][k]) for k in keys] + [_pct(r["average_AP"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append(
            "| **mean** | | | "
            + " | ".join(_pct(report["mAP"][k]) for k in keys)
            + f" | {_pct(report['average_mAP'])} |"
        )
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown per-class table format {fmt!r}")


def write_per_class(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
    """Write the per-class table; the format follows the suffix (.csv, or .md / .markdown)."""
    suffix = Path(path).suffix.lower()
    formats = {".csv": "csv", ".md": "markdown", ".markdown": "markdown"}
    if suffix not in formats:
        raise UserError(path, "per-class table must be a .csv or .md file")
    atomic_write_text(path, format_per_class(report, formats[suffix]))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_predictions(path: str | os.PathLike, results: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Write predictions `{vid: [{"label", "score", "segment": [s, e]}]}` as an ActivityNet result file."""
    payload = {"version": "grizal", "results": results, "external_data": {"used": False}}
    text = json.dumps(payload, default=_json_default, ensure_ascii=False)
    atomic_write_text(path, text + "\n")


# ------------------------------------------------------------------------------------------------- CLI


def parse_tious(spec: str, option: str = "--tiou") -> list[float]:
    """`"0.3,0.5"` or ranges `"0.5:0.05:0.95"` (start:step:stop, inclusive), mixable with commas.

    A range gives the decimal values (0.5, 0.55, ..., 0.95), the same floats a list in params.yaml gives;
    `np.arange` would drift (0.6000000000000001), and `eval_detection.py`'s `np.linspace(0.5, 0.95, 10)` holds
    0.8999999999999999 for 0.9, which differs only for a tIoU of exactly that float."""
    values: list[float] = []
    for part in (p.strip() for p in spec.split(",")):
        try:
            if ":" in part:
                start, step, stop = (float(x) for x in part.split(":"))
                if step <= 0 or stop < start:
                    raise ValueError
                count = int(math.floor((stop - start) / step + 1e-9)) + 1
                values += [round(start + i * step, 10) for i in range(count)]
            else:
                values.append(float(part))
        except ValueError:
            raise UserError(
                option, f"cannot read {part!r}: use numbers like 0.5 or ranges like 0.5:0.05:0.95"
            ) from None
    bad = [v for v in values if not 0 < v <= 1]
    if bad:
        raise UserError(option, f"thresholds must lie in (0, 1], got {bad[0]:g}")
    duplicates = [k for k, n in Counter(threshold_key(v) for v in values).items() if n > 1]
    if duplicates:
        raise UserError(option, f"threshold {duplicates[0]} is given twice")
    return values


def parse_ints(spec: str, option: str) -> list[int]:
    try:
        values = [int(p) for p in spec.split(",")]
    except ValueError:
        raise UserError(option, f"expected comma-separated integers, got {spec!r}") from None
    if any(v < 1 for v in values):
        raise UserError(option, "values must be >= 1")
    return values


def parse_floats(spec: str, option: str) -> list[float]:
    try:
        values = [float(p) for p in spec.split(",")]
    except ValueError:
        raise UserError(option, f"expected comma-separated numbers, got {spec!r}") from None
    if any(not 0 < v <= 1 for v in values):
        raise UserError(option, "values must lie in (0, 1]")
    return values


def parse_classes(spec: str) -> list[str]:
    """Comma-separated names, or a file: a split.json (its "unseen"), a JSON list, or one name per line."""
    path = Path(spec)
    if path.is_file():
        if path.suffix.lower() == ".json":
            data = read_json(path)
            names = data.get("unseen") if isinstance(data, dict) else data
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise UserError(path, "expected a JSON list of class names or a split file with 'unseen'")
        else:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        names = [name.strip() for name in spec.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UserError(spec if path.is_file() else "--classes", "no class names given")
    return names
