"""Running a trained model and the training-free baseline over a split's test videos, then scoring.

For every test video and every evaluated class (the unseen ones in open-set), the model gives a probability
per snippet; ``grizal.localization`` turns the curves into segments. The training-free reference (as in
STALE/T3AL) classifies each snippet by the cosine similarity between its CLIP frame feature and the CLIP
text embedding of each class prompt (a softmax over the evaluated classes at CLIP's temperature), and goes
through the same localization. ``evaluate_model`` writes ``predictions.json`` and ``baseline_predictions.json``
(ActivityNet result format), ``per_class.md``, ``plots/*.png`` and the metrics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.common import UserError, atomic_write_json, atomic_write_text
from pipeline.data.index import Index
from pipeline.data.splits import Split
from pipeline.features.inputs import FeatureSet, standardized
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

CLIP_TEMPERATURE = 100.0
NO_GROUND_TRUTH = ("no ground truth to score: the test videos hold no annotated instance of the evaluated classes "
                   "(unlabelled videos, prepare.allow_empty); predictions are written")


def model_probs(model: torch.nn.Module, videos: VideoTensors, priors: PriorTensors,
                device: torch.device | str = "cpu", batch_size: int = 64) -> np.ndarray:
    """(V, C, T) probabilities for every video and class."""
    import torch

    with torch.no_grad():
        return _model_probs(model, videos, priors, device, batch_size)


def _model_probs(model: torch.nn.Module, videos: VideoTensors, priors: PriorTensors, device: torch.device | str,
                 batch_size: int) -> np.ndarray:
    import numpy as np
    import torch

    n_videos, n_classes = len(videos.ids), len(priors.classes)
    out = np.zeros((n_videos, n_classes, videos.rgb.shape[1]), dtype=np.float32)
    pairs = [(v, c) for v in range(n_videos) for c in range(n_classes)]
    z_cls = model.encode_priors({k: t.to(device) for k, t in priors.tensors.items()})  # once per class
    for start in range(0, len(pairs), batch_size):
        chunk = torch.tensor(pairs[start:start + batch_size])
        v_idx, c_idx = chunk[:, 0], chunk[:, 1]
        flow = videos.flow[v_idx].to(device) if videos.flow is not None else None
        outputs = model(videos.rgb[v_idx].to(device), flow, z_cls=z_cls[c_idx.to(device)])
        probs = outputs["probs"].float().cpu().numpy()
        out[v_idx.numpy(), c_idx.numpy()] = probs
    return out


def baseline_undefined(rgb_attrs: dict[str, Any], priors_attrs: dict[str, Any] | None = None) -> str | None:
    """Why the training-free baseline cannot run on these frame features (None when it can): it compares frame
    features with CLIP text embeddings, which needs the frames encoded by the same CLIP as the priors."""
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


def baseline_probs(videos: VideoTensors, priors: PriorTensors) -> np.ndarray:
    """(V, C, T): per snippet, a softmax over classes of CLIP cosine similarity (frame vs class prompt)."""
    import torch

    frames = torch.nn.functional.normalize(videos.rgb.float(), dim=-1)
    texts = torch.nn.functional.normalize(priors.name_embedding.float(), dim=-1)
    logits = CLIP_TEMPERATURE * torch.einsum("vtd,cd->vct", frames, texts)
    return torch.softmax(logits, dim=1).numpy()


def curves_to_results(probs: np.ndarray, videos: VideoTensors, classes: list[str],
                      loc_cfg: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    from grizal.localization import cross_class_curves, probs_to_segments

    results: dict[str, list[dict[str, Any]]] = {}
    probs = cross_class_curves(probs, loc_cfg.get("cross_class", "none"))
    for v, vid in enumerate(videos.ids):
        found = []
        for c, name in enumerate(classes):
            for start, end, score in probs_to_segments(probs[v, c], videos.times[v], videos.durations[v], **loc_cfg):
                found.append({"label": name, "score": round(float(score), 6),
                              "segment": [round(float(start), 3), round(float(end), 3)]})
        results[vid] = sorted(found, key=lambda r: -r["score"])
    return results


def score(results: dict[str, Any], gt: GroundTruth, classes: list[str],
          tious: list[float] | Thresholds) -> dict[str, Any]:
    return evaluate_detection(gt, load_predictions({"results": results}, name="predictions"), tious, classes)


def evaluate_model(index: Index, split: Split, features_dir: Path, model_path: Path,
                   loc_cfg: dict[str, Any], tious: list[float] | Thresholds, out_dir: Path | None = None,
                   n_plots: int = 6, device: str = "auto", metrics_path: Path | None = None,
                   where: str | os.PathLike | None = "params.yaml") -> dict[str, Any]:
    """Predict, score and (with ``out_dir``) write predictions, metrics (``out_dir/metrics.json``, and their
    summary to ``metrics_path`` when given), tables and plots. ``where`` names the params file of ``loc_cfg``
    and ``device``."""
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
        loc_cfg = localization_config(loc_cfg)
    except ConfigError as err:
        raise UserError(where, str(err)) from None
    ids, classes = list(split.test_videos), list(split.unseen)
    durations = {vid: index.videos[vid].duration for vid in ids}
    videos = feature_set.videos(ids, durations, checkpoint["T"], use_flow)
    ids = videos.ids  # less the videos that failed extraction within its budget
    priors = feature_set.priors(classes)
    gt = ground_truth_of(index, ids, classes)
    annotated = set(gt.label)
    scored = [c for c in classes if c in annotated]  # classes without ground truth are predicted, not scored
    unscored = [c for c in classes if c not in annotated]
    model_videos, model_priors = standardized(videos, priors, checkpoint["feature_stats"])
    no_baseline = baseline_undefined(feature_set.attrs("rgb"), feature_set.attrs("priors"))
    curves = {"grizal": model_probs(model, model_videos, model_priors, run_on)}
    if no_baseline is None:
        curves["baseline"] = baseline_probs(videos, priors)
    reports, results, metrics = {}, {}, {}
    for name, probs in curves.items():
        results[name] = curves_to_results(probs, videos, classes, loc_cfg)
        if scored:
            reports[name] = score(results[name], gt, scored, tious)
            metrics[name] = metrics_json(reports[name])
        else:
            metrics[name] = {"scored": False, "reason": NO_GROUND_TRUTH,
                             "counts": {"predictions": sum(len(r) for r in results[name].values())}}
        if unscored:
            metrics[name]["unscored_classes"] = unscored
    if no_baseline is not None:
        metrics["baseline"] = _unscored_like(metrics["grizal"], f"training-free baseline {no_baseline}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_predictions(out_dir / "predictions.json", results["grizal"])
        # No baseline: an empty result file (a DVC output); metrics.json says why.
        write_predictions(out_dir / "baseline_predictions.json", results.get("baseline", {}))
        atomic_write_json(out_dir / "metrics.json", metrics)
        if metrics_path is not None:  # DVC's metric: the short summary (scoring.metrics_summary)
            atomic_write_json(metrics_path, metrics_summary(metrics))
        if scored:
            write_per_class(out_dir / "per_class.md", reports["grizal"])
        else:  # a declared output either way: it says why there is no table
            atomic_write_text(out_dir / "per_class.md", f"# Per-class results\n\nNothing scored: {NO_GROUND_TRUTH}. "
                                                        f"The predictions are in predictions.json "
                                                        f"({metrics['grizal']['counts']['predictions']} segments "
                                                        f"for {len(classes)} classes).\n")
        _plots(curves["grizal"], videos, classes, index, results["grizal"], out_dir / "plots", n_plots)
    if scored and not any(results["grizal"].values()):
        print(no_prediction_hint(curves["grizal"], loc_cfg))
    return {"metrics": metrics, "reports": reports, "unscored": unscored}


def no_prediction_hint(probs: np.ndarray, loc_cfg: dict[str, Any]) -> str:
    """One line for a model that predicted nothing: how close its curves came to the lowest threshold."""
    import numpy as np

    lowest = min(loc_cfg["thresholds"])
    peak = float(np.max(probs)) if probs.size else 0.0
    return (f"warning: no prediction at all: the highest probability on any test video was {peak:.3f}, below the "
            f"lowest threshold {lowest:g}; train longer (train.epochs) or lower localization.thresholds")


def _plots(probs, videos: VideoTensors, classes, index: Index, results, out_dir: Path, n_plots: int) -> None:
    """Probability curves of the first ``n_plots`` test videos, for a class each video contains (an unlabelled
    video: the class whose curve peaks highest)."""
    import numpy as np

    chosen = []
    out_dir.mkdir(parents=True, exist_ok=True)  # a declared output, even when there is nothing to draw
    for v, vid in enumerate(videos.ids[:n_plots]):
        labels = [s.label for s in index.videos[vid].segments if s.label in classes]
        if not labels and len(classes):  # an unlabelled video: the class whose curve peaks highest
            labels = [classes[int(np.argmax(np.asarray(probs[v]).max(axis=-1)))]]
        if not labels:
            continue
        c = classes.index(labels[0])
        gt_segments = [(s.start, s.end) for s in index.videos[vid].segments if s.label == labels[0]]
        pred = [tuple(r["segment"]) for r in results[vid] if r["label"] == labels[0]][:3]
        chosen.append((vid, labels[0], videos.times[v], probs[v, c], gt_segments, pred))
    plot_probability_curves(chosen, out_dir)
