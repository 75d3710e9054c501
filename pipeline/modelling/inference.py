"""Running a trained model and the training-free baselines over a split's test videos, then scoring.

For every test video and every evaluated class (the unseen ones in open-set), the model gives a probability
per snippet; ``grizal.localization`` turns the curves into segments. The two training-free baselines
(``modelling.baselines``: frozen CLIP with a background option, the class-name prompt or the priors' prototype)
give curves of the same shape and go through the same localization and scoring. ``evaluate_model`` writes
``predictions.json`` and ``<baseline>_predictions.json`` of each baseline (ActivityNet result format),
``per_class.md``, ``plots/*.png`` and the metrics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.common import UserError, atomic_write_json, atomic_write_text
from pipeline.data.index import Index
from pipeline.data.splits import Split
from pipeline.features.inputs import FeatureSet, standardized
from pipeline.modelling.baselines import BASELINES, baseline_curves
from pipeline.modelling.checkpoint import load_model as load_checkpoint
from pipeline.modelling.devices import torch_device
from pipeline.modelling.plots import plot_probability_curves
from pipeline.modelling.scoring import (
    GroundTruth,
    Thresholds,
    evaluate_detection,
    ground_truth_of,
    load_predictions,
    metrics_json,
    metrics_summary,
    write_per_class,
    write_predictions,
)

if TYPE_CHECKING:  # torch and the model load when predicting, not for `--help`
    import numpy as np
    import torch

    from pipeline.features.inputs import PriorTensors, VideoTensors

CHUNK_FLOATS = 1 << 24  # probabilities held at once while evaluating (64 MB of float32)
BASELINE_NOT_PER_QUERY = ("training-free baseline undefined per query: its video-level class weight is a softmax "
                          "over the evaluated classes, which has one class when each sentence is localized on its "
                          "own")
NO_GROUND_TRUTH = ("no ground truth to score: the test videos hold no annotated instance of the evaluated classes "
                   "(unlabelled videos, prepare.allow_empty); predictions are written")


def model_probs(model: torch.nn.Module, videos: VideoTensors, priors: PriorTensors,
                device: torch.device | str = "cpu", batch_size: int = 64) -> np.ndarray:
    """(V, C, T) probabilities for every video and class."""
    import torch

    with torch.no_grad():
        return _model_probs(model, videos, priors, device, batch_size)


def _model_probs(model: torch.nn.Module, videos: VideoTensors, priors: PriorTensors, device: torch.device | str,
                 batch_size: int, z_cls: torch.Tensor | None = None) -> np.ndarray:
    import numpy as np
    import torch

    n_videos, n_classes = len(videos.ids), len(priors.classes)
    out = np.zeros((n_videos, n_classes, videos.rgb.shape[1]), dtype=np.float32)
    pairs = [(v, c) for v in range(n_videos) for c in range(n_classes)]
    if z_cls is None:
        z_cls = model.encode_priors({k: t.to(device) for k, t in priors.tensors.items()})  # once per class
    for start in range(0, len(pairs), batch_size):
        chunk = torch.tensor(pairs[start:start + batch_size])
        v_idx, c_idx = chunk[:, 0], chunk[:, 1]
        flow = videos.flow[v_idx].to(device) if videos.flow is not None else None
        outputs = model(videos.rgb[v_idx].to(device), flow, z_cls=z_cls[c_idx.to(device)])
        probs = outputs["probs"].float().cpu().numpy()
        out[v_idx.numpy(), c_idx.numpy()] = probs
    return out


def video_chunks(ids: list[str], n_classes: int, T: int, max_floats: int = CHUNK_FLOATS) -> list[list[str]]:
    """The test videos in chunks whose (videos, classes, T) probabilities hold at most ``max_floats`` numbers
    (at least one video a chunk): evaluation memory is O(chunk x C x T), not O(V x C x T)."""
    per_chunk = max(1, max_floats // max(1, n_classes * T))
    return [ids[i:i + per_chunk] for i in range(0, len(ids), per_chunk)]


def _chunk_curves(model, z_cls, videos: VideoTensors, model_videos: VideoTensors, priors: PriorTensors,
                  model_priors: PriorTensors, device, with_baseline: bool) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        curves = {"grizal": _model_probs(model, model_videos, model_priors, device, 64, z_cls)}
    if with_baseline:
        curves.update(baseline_curves(videos, priors))
    return curves


def _query_probs(model, z_cls, videos: VideoTensors, classes: list[str], index: Index, device,
                 batch_size: int = 64) -> np.ndarray:
    """(V, C, T) with each video's own query sentences filled and every other (video, sentence) left at 0: the
    model runs one forward pass per query, not per (video, class) pair; zeros yield no segment."""
    import numpy as np
    import torch

    out = np.zeros((len(videos.ids), len(classes), videos.rgb.shape[1]), dtype=np.float32)
    pairs = [(v, c) for v, cs in enumerate(_own_queries(videos.ids, classes, index)) for c in cs]
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = torch.tensor(pairs[start:start + batch_size])
            v_idx, c_idx = chunk[:, 0], chunk[:, 1]
            flow = videos.flow[v_idx].to(device) if videos.flow is not None else None
            outputs = model(videos.rgb[v_idx].to(device), flow, z_cls=z_cls[c_idx.to(device)])
            out[v_idx.numpy(), c_idx.numpy()] = outputs["probs"].float().cpu().numpy()
    return out


def _own_queries(ids: list[str], classes: list[str], index: Index) -> list[list[int]]:
    """Per video, the columns of ``classes`` that are its own query sentences."""
    column = {name: c for c, name in enumerate(classes)}
    return [sorted({column[s.label] for s in index.videos[vid].segments if s.label in column}) for vid in ids]


def grounding_metrics(index: Index, ids: list[str], results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Charades-STA's Table 3 columns: R@1 and R@5 at IoU 0.5 and 0.7 and the mean IoU of each query's top-1
    moment; a query is a (video, sentence, moment) of a test video, ranked among that video's moments for it."""
    import numpy as np

    from grizal.metrics import score_grounding

    moments, ranked = [], []
    for vid in ids:
        for segment in index.videos[vid].segments:
            rows = sorted((r for r in results.get(vid, []) if r["label"] == segment.label), key=lambda r: -r["score"])
            moments.append(np.array([segment.start, segment.end]))
            ranked.append(np.array([r["segment"] for r in rows], dtype=np.float64).reshape(-1, 2))
    if not moments:
        return {"scored": False, "reason": NO_GROUND_TRUTH}
    scores = score_grounding(moments, ranked)
    return {"recall": {f"R@{n},IoU={m}": round(v, 6) for (n, m), v in scores.recall.items()},
            "mIoU": round(scores.mean_iou, 6), "counts": {"queries": scores.queries}}


def grounding_table(metrics: dict[str, Any]) -> str:
    """The grounding metrics as a markdown table, in percent (Table 3's columns)."""
    names = [*metrics["recall"], "mIoU"]
    values = [*metrics["recall"].values(), metrics["mIoU"]]
    return (f"| {' | '.join(names)} | queries |\n|{'---|' * (len(names) + 1)}\n"
            f"| {' | '.join(f'{100 * v:.2f}' for v in values)} | {metrics['counts']['queries']} |\n")


def baseline_undefined(rgb_attrs: dict[str, Any], priors_attrs: dict[str, Any] | None = None) -> str | None:
    """Why the training-free baselines cannot run on these frame features (None when they can): they compare
    frame features with CLIP text and image embeddings, which needs the frames encoded by the priors' CLIP."""
    rgb_settings = rgb_attrs.get("settings", {})
    frame = rgb_settings.get("frame_encoder")
    if frame:
        return (f"undefined: the frame features come from {frame['model']} (a video model), not CLIP, so they "
                "cannot be compared with CLIP text embeddings")
    if priors_attrs is None:
        return None
    rgb_clip = rgb_settings.get("clip") or {}
    prior_clip = priors_attrs.get("settings", {}).get("clip") or {}
    if not rgb_clip.get("weights_sha256") or rgb_clip.get("weights_sha256") != prior_clip.get("weights_sha256"):
        made = rgb_attrs.get("encoder", "another encoder")
        return (f"undefined: the frame features ({made}, {rgb_attrs.get('dim')}-d) were not made by the priors' "
                f"CLIP ({priors_attrs.get('encoder', '?')}, {priors_attrs.get('dim')}-d), so they cannot be "
                "compared with its text embeddings")
    return None


def _unscored_like(metrics: dict[str, Any], reason: str) -> dict[str, Any]:
    """A metrics entry with the figures of `metrics` (mAP per threshold, averages) all None (n/a)."""
    out: dict[str, Any] = {"scored": False, "reason": reason}
    for key, value in metrics.items():
        if key in ("scored", "reason", "counts", "unscored_classes"):
            continue
        out[key] = {k: None for k in value} if isinstance(value, dict) else None
    return out


def curves_to_results(probs: np.ndarray, videos: VideoTensors, classes: list[str],
                      loc_cfg: dict[str, Any], own: list[list[int]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Segments of every (video, class) curve; with ``own``, only of each video's own classes ``own[v]`` (the
    queries of temporal grounding, each localized alone: no cross-class weighting)."""
    from grizal.localization import cross_class_curves, probs_to_segments

    results: dict[str, list[dict[str, Any]]] = {}
    if own is None:
        probs = cross_class_curves(probs, loc_cfg.get("cross_class", "none"))
    for v, vid in enumerate(videos.ids):
        found = []
        for c in (range(len(classes)) if own is None else own[v]):
            name = classes[c]
            for start, end, score in probs_to_segments(probs[v, c], videos.times[v], videos.durations[v], **loc_cfg):
                found.append({"label": name, "score": round(float(score), 6),
                              "segment": [round(float(start), 3), round(float(end), 3)]})
        results[vid] = sorted(found, key=lambda r: -r["score"])
    return results


def score(results: dict[str, Any], gt: GroundTruth, classes: list[str],
          tious: list[float] | Thresholds) -> dict[str, Any]:
    return evaluate_detection(gt, load_predictions({"results": results}, name="predictions"), tious, classes)


def baseline_localization(loc_cfg: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The training-free baselines' localization settings: ``loc_cfg`` with the non-null ``overrides`` (the
    ``evaluate.baseline_localization`` section), checked (``ConfigError``)."""
    from grizal.localization import localization_config

    return localization_config({**loc_cfg, **{k: v for k, v in (overrides or {}).items() if v is not None}})


def evaluate_model(index: Index, split: Split, features_dir: Path, model_path: Path,
                   loc_cfg: dict[str, Any], tious: list[float] | Thresholds, out_dir: Path | None = None,
                   n_plots: int = 6, device: str = "auto", metrics_path: Path | None = None,
                   where: str | os.PathLike | None = "params.yaml",
                   max_floats: int = CHUNK_FLOATS, diagnosis_tiou: float | None = None,
                   baseline_loc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Predict, one chunk of test videos at a time (``video_chunks``, ``max_floats``), score and (with
    ``out_dir``) write predictions, metrics (to ``metrics_path``, by default ``out_dir/metrics.json``), tables
    and plots; with ``diagnosis_tiou`` too, GRIZAL's DETAD-style diagnosis in ``out_dir/diagnosis``. The
    training-free baselines are localized with ``loc_cfg`` updated by ``baseline_loc`` (``evaluate.
    baseline_localization``; a null value keeps ``loc_cfg``'s). ``where`` names the params file of ``loc_cfg``
    and ``device``."""
    import torch

    from grizal.localization import localization_config
    from grizal.model import ConfigError
    from pipeline.modelling.fit import check_prior_pairs

    run_on = torch_device(device, where)
    model, checkpoint = load_checkpoint(model_path, run_on)
    check_prior_pairs(checkpoint["model_config"], features_dir, model_path)  # the k it was trained with
    use_flow = checkpoint["model_config"].get("use_flow", True)
    feature_set = FeatureSet.open(features_dir)
    feature_set.check_made_by(checkpoint["encoders"], use_flow, model_path)
    try:
        loc_cfg, baseline_cfg = localization_config(loc_cfg), baseline_localization(loc_cfg, baseline_loc)
    except ConfigError as err:
        raise UserError(where, str(err)) from None
    ids, classes = list(split.test_videos), list(split.unseen)
    durations = {vid: index.videos[vid].duration for vid in ids}
    # less the videos that failed extraction within its budget, or whose annotation runs past the decoded video
    ids = feature_set.within_decoded(feature_set.extracted(ids, use_flow), durations)
    priors = feature_set.priors(classes)
    gt = ground_truth_of(index, ids, classes)
    annotated = set(gt.label)
    scored = [c for c in classes if c in annotated]  # classes without ground truth are predicted, not scored
    unscored = [c for c in classes if c not in annotated]
    no_baseline = baseline_undefined(feature_set.attrs("rgb"), feature_set.attrs("priors"))
    names = ["grizal"] + (list(BASELINES) if no_baseline is None else [])
    results: dict[str, dict[str, Any]] = {name: {} for name in names}
    plotted: list[tuple] = []  # the curves of the first n_plots test videos
    z_cls = model_priors = None
    n_done, peak = 0, 0.0
    for chunk_ids in video_chunks(ids, len(classes), checkpoint["T"], max_floats):
        videos = feature_set.videos(chunk_ids, durations, checkpoint["T"], use_flow)
        model_videos, chunk_priors = standardized(videos, priors, checkpoint["feature_stats"])
        if z_cls is None:
            model_priors = chunk_priors
            with torch.no_grad():
                z_cls = model.encode_priors({k: t.to(run_on) for k, t in model_priors.tensors.items()})
        if index.dataset == "charades":  # each query in its own video only
            curves = {"grizal": _query_probs(model, z_cls, model_videos, classes, index, run_on)}
        else:
            curves = _chunk_curves(model, z_cls, videos, model_videos, priors, model_priors, run_on,
                                   no_baseline is None)
        own = _own_queries(videos.ids, classes, index) if index.dataset == "charades" else None
        peak = max(peak, float(curves["grizal"].max()) if curves["grizal"].size else 0.0)
        for name, probs in curves.items():
            results[name].update(curves_to_results(probs, videos, classes,
                                                   loc_cfg if name == "grizal" else baseline_cfg, own))
        wanted = n_plots - n_done
        if wanted > 0:
            plotted.extend(_plot_inputs(curves["grizal"][:wanted], videos, classes, index, results["grizal"]))
        n_done += len(chunk_ids)
    reports, metrics = {}, {}
    if index.dataset == "charades":
        names = []
        metrics["grizal"] = grounding_metrics(index, ids, results["grizal"])
        for name in BASELINES:
            metrics[name] = {"scored": False, "reason": BASELINE_NOT_PER_QUERY}
            results.pop(name, None)
        scored = []
    for name in names:
        if scored:
            reports[name] = score(results[name], gt, scored, tious)
            metrics[name] = metrics_json(reports[name])
        else:
            metrics[name] = {"scored": False, "reason": NO_GROUND_TRUTH,
                             "counts": {"predictions": sum(len(r) for r in results[name].values())}}
        if unscored:
            metrics[name]["unscored_classes"] = unscored
    if no_baseline is not None and index.dataset != "charades":
        for name in BASELINES:
            metrics[name] = _unscored_like(metrics["grizal"], f"training-free baseline {no_baseline}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_predictions(out_dir / "predictions.json", results["grizal"])
        for name in BASELINES:  # no baseline: an empty result file (a DVC output); metrics.json says why
            write_predictions(out_dir / f"{name}_predictions.json", results.get(name, {}))
        atomic_write_json(out_dir / "metrics.json", metrics)
        if metrics_path is not None:  # DVC's metric: the short summary (scoring.metrics_summary)
            atomic_write_json(metrics_path, metrics_summary(metrics))
        if scored:
            write_per_class(out_dir / "per_class.md", reports["grizal"])
        elif index.dataset == "charades" and "recall" in metrics["grizal"]:  # per query, not per class
            atomic_write_text(out_dir / "per_class.md", grounding_table(metrics["grizal"]))
        else:  # a declared output either way: it says why there is no table
            predicted = sum(len(r) for r in results["grizal"].values())
            atomic_write_text(out_dir / "per_class.md", f"# Per-class results\n\nNothing scored: {NO_GROUND_TRUTH}. "
                                                        f"The predictions are in predictions.json ({predicted} "
                                                        f"segments for {len(classes)} classes).\n")
        (out_dir / "plots").mkdir(parents=True, exist_ok=True)  # a declared output, even with nothing to draw
        plot_probability_curves(plotted, out_dir / "plots")
        if diagnosis_tiou is not None:
            _write_diagnosis(out_dir / "diagnosis", index, gt, results["grizal"], scored,
                             reports.get("grizal"), diagnosis_tiou)
    if (scored or index.dataset == "charades") and not any(results["grizal"].values()):
        print(no_prediction_hint(peak, loc_cfg))
    return {"metrics": metrics, "reports": reports, "unscored": unscored}


def _write_diagnosis(out_dir: Path, index: Index, gt: GroundTruth, results: dict[str, Any], scored: list[str],
                     report: dict[str, Any] | None, tiou: float) -> None:
    """GRIZAL's DETAD-style diagnosis (``modelling.diagnosis``), or a page saying why there is none."""
    from pipeline.modelling.diagnosis import bins_for, write_diagnosis

    out_dir.mkdir(parents=True, exist_ok=True)
    if scored:
        write_diagnosis(out_dir, gt, load_predictions({"results": results}, name="predictions"), scored, tiou,
                        bins_for(index.dataset), report)
        return
    why = ("Charades-STA is scored per query (R@n, mIoU): a query has one moment in its own video, so DETAD's "
           "false-positive types (double detection, wrong label, ...) do not apply" if index.dataset == "charades"
           else NO_GROUND_TRUTH)
    atomic_write_text(out_dir / "diagnosis.md", f"# Error diagnosis (DETAD)\n\nNot made: {why}.\n")


def no_prediction_hint(peak: float, loc_cfg: dict[str, Any]) -> str:
    """One line for a model that predicted nothing: how close its curves came to the lowest threshold."""
    lowest = min(loc_cfg["thresholds"])
    return (f"warning: no prediction at all: the highest probability on any test video was {peak:.3f}, below the "
            f"lowest threshold {lowest:g}; train longer (train.epochs) or lower localization.thresholds")


def _plot_inputs(probs, videos: VideoTensors, classes, index: Index, results) -> list[tuple]:
    """The probability curve of each video of ``probs`` (a leading slice of ``videos``), for a class the video
    contains (an unlabelled video: the class whose curve peaks highest)."""
    import numpy as np

    chosen = []
    for v, vid in enumerate(videos.ids[:len(probs)]):
        labels = [s.label for s in index.videos[vid].segments if s.label in classes]
        if not labels and len(classes):
            labels = [classes[int(np.argmax(np.asarray(probs[v]).max(axis=-1)))]]
        if not labels:
            continue
        c = classes.index(labels[0])
        gt_segments = [(s.start, s.end) for s in index.videos[vid].segments if s.label == labels[0]]
        pred = [tuple(r["segment"]) for r in results[vid] if r["label"] == labels[0]][:3]
        chosen.append((vid, labels[0], videos.times[v], probs[v, c], gt_segments, pred))
    return chosen
