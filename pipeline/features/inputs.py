"""Cached tensors for the learnable model: video features resampled to T, class priors, snippet targets.

The one place that turns stores (``pipeline.features.store``) and the index into model inputs, shared by training,
evaluation and ``grizal localize``. The frozen encoders are never loaded here.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.common import UserError
from pipeline.data.index import Index
from pipeline.features.store import FeatureStore, open_store, read_priors, read_store_attrs

if TYPE_CHECKING:  # torch loads with the first tensor made, not with the stage's `--help`
    import torch

# The token axis of each stored prior array, padded to the longest across classes.
PRIOR_TOKEN_AXIS = {"joint": 1, "joint_mask": 1, "token_type": 1, "name_tokens": 0, "name_mask": 0}


@dataclass
class VideoTensors:
    ids: list[str]
    rgb: torch.Tensor  # (V, T, D)
    flow: torch.Tensor | None  # (V, T, D)
    times: np.ndarray  # (V, T) snippet centres in seconds
    durations: np.ndarray  # (V,)


@dataclass
class PriorTensors:
    classes: list[str]
    tensors: dict[str, torch.Tensor]  # the model's prior inputs, each (C, ...), padded to a common length
    name_embedding: torch.Tensor  # (C, E) pooled CLIP text embedding of each class prompt
    text_embedding: torch.Tensor  # (C, k, E) pooled CLIP text embedding of each prior sentence
    image_embedding: torch.Tensor  # (C, k, E) pooled CLIP image embedding of each prior image

    def take(self, class_idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {key: value[class_idx] for key, value in self.tensors.items()}


def store_paths(features_dir: str | Path) -> dict[str, Path]:
    root = Path(features_dir)
    return {"rgb": root / "rgb.zarr", "flow": root / "flow.zarr", "priors": root / "priors.zarr"}


# How far an annotated duration may run past the decoded one: the larger of a fraction and seconds (containers'
# declared and decoded lengths differ a little; an annotation ten times the video's length is wrong).
DURATION_SLACK = (0.10, 2.0)


def _slack(decoded: float) -> float:
    return max(DURATION_SLACK[0] * decoded, DURATION_SLACK[1])


class FeatureSet:
    """A feature folder (rgb.zarr, flow.zarr, priors.zarr) opened once: each store and its root attributes are
    opened on first need and kept, for the encoder signature, T, the videos and the priors."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.paths = store_paths(folder)
        self._stores: dict[str, FeatureStore] = {}
        self._attrs: dict[str, dict[str, Any]] = {}

    @classmethod
    def open(cls, folder: str | Path) -> FeatureSet:
        return cls(folder)

    def store(self, kind: str) -> FeatureStore:
        if kind not in self._stores:
            self._stores[kind] = open_store(self.paths[kind])
        return self._stores[kind]

    def attrs(self, kind: str) -> dict[str, Any]:
        if kind not in self._attrs:
            self._attrs[kind] = read_store_attrs(self.paths[kind])
        return self._attrs[kind]

    def signature(self, use_flow: bool = True) -> dict[str, dict]:
        """The attributes that say which frozen encoders made the features (kept in checkpoints)."""
        return {kind: self.attrs(kind) for kind in ["rgb", "priors"] + (["flow"] if use_flow else [])}

    def check_made_by(self, trained: dict[str, dict[str, Any]], use_flow: bool, where: Any) -> None:
        """The features must come from the encoders a model was trained on (``trained``, a checkpoint's record
        of the stores' attributes); a difference is an error that says which settings differ."""
        current, problems = self.signature(use_flow), []
        for kind, was in trained.items():
            now = current.get(kind, {})
            for key in sorted(set(was) | set(now)):
                if was.get(key) != now.get(key):
                    problems.append(f"{kind}.{key}: trained with {was.get(key)!r}, features have {now.get(key)!r}")
        if problems:
            raise UserError(where, "checkpoint was made with other encoder settings: " + "; ".join(problems[:4]))

    @property
    def T(self) -> int:
        """The number of snippets the model reads per video: ``extract.T``, recorded in the rgb store."""
        return int(self.store("rgb").attrs["T"])

    def extracted(self, ids: list[str], use_flow: bool = True) -> list[str]:
        """`ids` less the videos recorded as failed in a store's failures manifest (the extract stage allowed
        them within extract.max_failure_fraction): they are left out, with one line saying so."""
        kinds = ["rgb"] + (["flow"] if use_flow else [])
        failed: dict[str, str] = {}
        for kind in kinds:
            store = self.store(kind)
            records = store.failures()
            if records:
                complete = set(store.complete_ids())
                failed.update({v: str(records[v].get("reason")) for v in ids if v in records and v not in complete})
        if failed:
            first = sorted(failed)[0]
            print(f"{self.folder}: leaving out {len(failed)} of {len(ids)} video(s) that failed extraction "
                  f"(within extract.max_failure_fraction), e.g. {first}: {failed[first][:160]}", file=sys.stderr)
        return [v for v in ids if v not in failed]

    def within_decoded(self, ids: list[str], durations: dict[str, float]) -> list[str]:
        """`ids` less the videos whose annotated duration (the index's) is beyond the duration decoded at
        extraction (the rgb store's) by more than DURATION_SLACK: their segments would lie past the video's end.
        They are left out, with one line saying so."""
        decoded = {v: a.get("duration") for v, a in self.store("rgb").video_attrs().items()}
        beyond = {}
        for vid in ids:
            real = decoded.get(vid)
            if isinstance(real, int | float) and real > 0 and not durations[vid] <= real + _slack(real):
                beyond[vid] = (durations[vid], real)
        if beyond:
            first = sorted(beyond)[0]
            told, real = beyond[first]
            print(f"{self.paths['rgb']}: leaving out {len(beyond)} of {len(ids)} video(s) whose annotated duration "
                  f"is beyond the decoded one by more than {DURATION_SLACK[0]:.0%} or {DURATION_SLACK[1]:g} s, "
                  f"e.g. {first}: {told:g} s annotated, {real:g} s decoded (fix the annotation's duration)",
                  file=sys.stderr)
        return [v for v in ids if v not in beyond]

    def videos(self, ids: list[str], durations: dict[str, float], T: int, use_flow: bool = True) -> VideoTensors:
        """The model inputs of `ids`, less the recorded extraction failures (`extracted`): use the result's ids."""
        import torch

        from grizal.temporal import snippet_times

        ids = self.within_decoded(self.extracted(list(ids), use_flow), durations)
        arrays = {}
        for kind in ["rgb"] + (["flow"] if use_flow else []):
            store = self.store(kind)
            missing = sorted(set(ids) - set(store.complete_ids()))
            if missing:
                raise UserError(self.paths[kind], f"{len(missing)} video(s) not extracted, e.g. {missing[0]}; "
                                                  "run the extract stage (or `python -m pipeline.extract check`)")
            arrays[kind] = torch.from_numpy(store.read_resampled(ids, T, durations))
        times = np.stack([snippet_times(durations[vid], T) for vid in ids]) if ids else np.zeros((0, T))
        return VideoTensors(list(ids), arrays["rgb"], arrays.get("flow"), times,
                            np.array([durations[vid] for vid in ids], dtype=np.float64))

    def priors(self, classes: list[str]) -> PriorTensors:
        import torch

        per_class = read_priors(self.paths["priors"], classes)
        tensors = {}
        for key, axis in PRIOR_TOKEN_AXIS.items():
            parts = [np.asarray(per_class[name][key]) for name in classes]
            tensors[key] = torch.from_numpy(_pad_stack(parts, axis))
        tensors["joint_mask"] = tensors["joint_mask"].bool()
        tensors["name_mask"] = tensors["name_mask"].bool()
        tensors["joint"] = tensors["joint"].float()
        tensors["name_tokens"] = tensors["name_tokens"].float()
        tensors["token_type"] = tensors["token_type"].long()
        pooled = {key: torch.from_numpy(np.stack([np.asarray(per_class[n][key]) for n in classes])).float()
                  for key in ("name_embedding", "text_embedding", "image_embedding")}
        return PriorTensors(list(classes), tensors, **pooled)


def load_videos(features_dir: str | Path, ids: list[str], durations: dict[str, float], T: int,
                use_flow: bool = True) -> VideoTensors:
    """``FeatureSet.videos`` of a folder used once (e.g. one new video in ``grizal localize``'s cache)."""
    return FeatureSet(features_dir).videos(ids, durations, T, use_flow)


def load_priors(features_dir: str | Path, classes: list[str]) -> PriorTensors:
    """``FeatureSet.priors`` of a folder used once."""
    return FeatureSet(features_dir).priors(classes)


def _pad_stack(parts: list[np.ndarray], axis: int) -> np.ndarray:
    """Stack arrays that differ only in their token axis, zero/False-padding it to the longest."""
    length = max(p.shape[axis] for p in parts)
    padded = []
    for p in parts:
        pad = [(0, 0)] * p.ndim
        pad[axis] = (0, length - p.shape[axis])
        padded.append(np.pad(p, pad))
    return np.stack(padded)


def snippet_targets(index: Index, ids: list[str], classes: list[str], times: np.ndarray) -> torch.Tensor:
    """(V, C, T) masks: 1 where the snippet centre lies inside a segment of that class."""
    import torch

    class_pos = {name: i for i, name in enumerate(classes)}
    targets = np.zeros((len(ids), len(classes), times.shape[1]), dtype=np.float32)
    for v, vid in enumerate(ids):
        for seg in index.videos[vid].segments:
            c = class_pos.get(seg.label)
            if c is not None:
                targets[v, c][(times[v] >= seg.start) & (times[v] < seg.end)] = 1.0
    return torch.from_numpy(targets)


def fit_feature_stats(videos: VideoTensors, priors: PriorTensors) -> dict[str, dict[str, list[float]]]:
    """Per-dimension mean and std of each input kind over the training data.

    Frozen CLIP features share a large common component (random-init encoders, as in the demo world, are
    extreme: two random snippets have cosine ~0.997), so the model reads standardised inputs. Text and image
    prior tokens get their own statistics; padding is left out.
    """
    import torch

    joint, mask, kind = priors.tensors["joint"], priors.tensors["joint_mask"], priors.tensors["token_type"]
    text = torch.cat([joint[mask & (kind == 0)], priors.tensors["name_tokens"][priors.tensors["name_mask"]]])
    parts = {"rgb": videos.rgb.reshape(-1, videos.rgb.shape[-1]), "text_tokens": text,
             "image_tokens": joint[mask & (kind == 1)]}
    if videos.flow is not None:
        parts["flow"] = videos.flow.reshape(-1, videos.flow.shape[-1])
    stats = {}
    for name, values in parts.items():
        if len(values) == 0:
            continue
        values = values.double()
        stats[name] = {"mean": values.mean(0).tolist(), "std": values.std(0).clamp_min(1e-6).tolist()}
    return stats


def _standardize(x: torch.Tensor, stat: dict[str, list[float]] | None) -> torch.Tensor:
    import torch

    if stat is None:
        return x
    mean = torch.tensor(stat["mean"], dtype=x.dtype)
    std = torch.tensor(stat["std"], dtype=x.dtype)
    return (x - mean) / std


def standardized(videos: VideoTensors, priors: PriorTensors | None,
                 stats: dict[str, dict[str, list[float]]]) -> tuple[VideoTensors, PriorTensors | None]:
    """Copies of the model inputs standardised with training statistics (raw features and pooled embeddings stay
    untouched for the training-free baselines, which compare them in CLIP space)."""
    import torch

    flow = _standardize(videos.flow, stats.get("flow")) if videos.flow is not None else None
    out_videos = VideoTensors(videos.ids, _standardize(videos.rgb, stats.get("rgb")), flow, videos.times,
                              videos.durations)
    if priors is None:
        return out_videos, None
    tensors = dict(priors.tensors)
    kind, mask = tensors["token_type"], tensors["joint_mask"]
    joint = torch.where((kind == 1)[..., None], _standardize(tensors["joint"], stats.get("image_tokens")),
                        _standardize(tensors["joint"], stats.get("text_tokens")))
    tensors["joint"] = joint * mask[..., None]
    tensors["name_tokens"] = (_standardize(tensors["name_tokens"], stats.get("text_tokens"))
                              * tensors["name_mask"][..., None])
    return out_videos, dataclasses.replace(priors, tensors=tensors)
