"""Fitting GRIZAL's learnable layers over the cached feature stores (the train stage's work).

Samples are (video, class) pairs of the split's training videos and seen classes; a video without an
instance of the class is a negative. Only cached tensors are read: the frozen encoders are never loaded.
Writes ``model.pt`` (weights, configs, T, and the encoder attributes the features were made with),
``checkpoint.pt`` (resumable: after the first and the last epoch, and at most every 10 s between them) and, with
DVCLive, the per-epoch loss terms and learning rate that ``dvc metrics``, ``dvc plots`` and ``dvc exp`` read
(``metrics/train/``).

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m pipeline.train ...`` (DDP; gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.common import UserError
from pipeline.data.index import Index
from pipeline.data.splits import Split
from pipeline.modelling.checkpoint import load_resume, save_model, save_resume
from pipeline.modelling.devices import torch_device
from pipeline.params_schema import TrainParams, validate_section
from pipeline.precision import announce

if TYPE_CHECKING:  # torch, numpy and the model load when training starts, not for `--help`
    import numpy as np
    import torch
    from dvclive import Live

    from pipeline.features.inputs import PriorTensors

FUSED_ADAM_DEVICES = ("cpu", "cuda")
# The resume state is saved after the first and the last epoch and between them at most this often: a killed run
# loses at most this much work, and short epochs (a fraction of a second on the demo) do not spend a tenth of the
# run writing checkpoints.
RESUME_EVERY_S = 10.0


class TrainConfig(TrainParams):
    """The train settings: the ``train`` params model (keys, defaults, ranges in ``pipeline.params_schema``)."""

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], where: str | os.PathLike | None = "params.yaml") -> TrainConfig:
        """From a ``train`` section; a bad value is one line naming ``where`` and the key."""
        return cls(**validate_section({"train": cfg}, "train", where))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def check_prior_pairs(model_cfg: dict[str, Any], features_dir: str | os.PathLike, where: str | os.PathLike | None,
                      ) -> None:
    """``model.k`` reads the first k prior pairs of each class: at most the pairs the priors store holds (its
    ``k`` attribute). Checked at the door, so a too large k is one line, not an error from inside the model."""
    from pipeline.features.inputs import store_paths
    from pipeline.features.store import read_store_attrs

    if not (model_cfg.get("use_texts", True) or model_cfg.get("use_images", True)):
        return  # the pairs are not read
    k = model_cfg.get("k", 4)
    path = store_paths(features_dir)["priors"]
    stored = read_store_attrs(path).get("k")
    if isinstance(stored, int) and not isinstance(k, bool) and isinstance(k, int) and k > stored:
        raise UserError(where, f"model.k: expected at most {stored} (the prior pairs in {path}), got {k}")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def config_digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_digest(videos, priors: PriorTensors, targets: torch.Tensor) -> str:
    """sha256 of the tensors a run trains on (features, priors, targets): a resume checkpoint counts only for the
    same data, so re-extracted features or remade priors with unchanged settings retrain instead of resuming."""
    import numpy as np

    digest = hashlib.sha256()
    parts = [videos.rgb, targets] + ([videos.flow] if videos.flow is not None else [])
    parts += [priors.tensors[key] for key in sorted(priors.tensors)]
    for part in parts:
        digest.update(np.ascontiguousarray(part.numpy()).tobytes())
    return digest.hexdigest()[:16]


def linear_warmup_decay(step: int, total: int, warmup: int) -> float:
    """The paper's schedule: linear warm-up, then linear decay to zero."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def class_similarity(priors: PriorTensors) -> np.ndarray:
    """(C, C) cosine between the classes' mean prior tokens (centred over the classes), real tokens only."""
    import torch

    joint, mask = priors.tensors["joint"].float(), priors.tensors["joint_mask"].float()[..., None]
    means = (joint * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1.0)
    means = torch.nn.functional.normalize(means - means.mean(0), dim=-1)
    return (means @ means.T).numpy()


def epoch_pairs(targets: torch.Tensor, negatives_per_positive: float, rng: np.random.Generator,
                hard_negatives: int = 0, similarity: np.ndarray | None = None, pool: int = 3) -> np.ndarray:
    """Shuffled (video, class) pairs: every positive, a random draw of negatives and, per positive, up to
    ``hard_negatives`` of its video's absent classes drawn from the ``pool`` whose priors are most similar to
    the positive class's (e.g. the same shape with another motion): the pairs that teach what tells
    look-alike classes apart. The number of pairs does not depend on ``rng``."""
    import numpy as np

    present = (targets.amax(dim=-1) > 0).numpy()
    pos = np.argwhere(present)
    parts = [pos]
    if hard_negatives and similarity is not None:
        ranked = np.argsort(-similarity, axis=1, kind="stable")
        hard = []
        for v, c in pos:
            candidates = [int(j) for j in ranked[c] if j != c and not present[v, j]][:pool]
            take = min(hard_negatives, len(candidates))
            hard += [(v, j) for j in rng.choice(candidates, take, replace=False)] if take else []
        parts.append(np.array(hard, dtype=pos.dtype).reshape(-1, 2))
    neg = np.argwhere(~present)
    n_neg = min(len(neg), int(round(negatives_per_positive * len(pos))))
    if n_neg:
        parts.append(neg[rng.choice(len(neg), n_neg, replace=False)])
    pairs = np.concatenate(parts)
    return pairs[rng.permutation(len(pairs))]


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def train(index: Index, split: Split, features_dir: Path, model_cfg: dict[str, Any],
          loss_cfg: dict[str, Any], cfg: TrainConfig, out_dir: Path, progress: bool = True,
          log=print, live_dir: Path | None = None, where: str | os.PathLike | None = "params.yaml") -> Path:
    """Train and write ``out_dir/model.pt``; resumes from ``out_dir/checkpoint.pt`` when its config matches.
    With ``live_dir``, the per-epoch loss terms and learning rate are logged there with DVCLive (rank 0).
    ``where`` names the params file the model and loss settings came from, in errors."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from tqdm import tqdm

    from grizal.losses import OBJECTIVE_TERMS, compute_losses, loss_config
    from grizal.model import ConfigError, build_model, parameter_summary
    from grizal.precision import resolve_precision
    from pipeline.features.inputs import (
        FeatureSet,
        fit_feature_stats,
        snippet_targets,
        standardized,
    )

    device = torch_device(cfg.device, where)
    info = init_distributed(device)
    if info.world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    seed_everything(cfg.seed)
    precision = resolve_precision(cfg.precision, device, cpu_bf16=False)
    if info.main:
        announce("train.precision", cfg.precision, precision, device)
    try:
        loss_cfg = loss_config(loss_cfg)
    except ConfigError as err:
        raise UserError(where, str(err)) from None

    use_flow = bool(model_cfg.get("use_flow", True))
    ids = list(split.train_videos)
    classes = list(split.seen)
    durations = {vid: index.videos[vid].duration for vid in ids}
    feature_set = FeatureSet.open(features_dir)
    T = cfg.T or feature_set.T  # the model is length-free: it may read the stored videos resampled shorter
    videos = feature_set.videos(ids, durations, T, use_flow)
    ids = videos.ids  # less the videos that failed extraction within its budget
    priors = feature_set.priors(classes)
    targets = snippet_targets(index, ids, classes, videos.times)
    data = data_digest(videos, priors, targets)
    feature_stats = fit_feature_stats(videos, priors)
    videos, priors = standardized(videos, priors, feature_stats)
    signature = feature_set.signature(use_flow)

    dims = {"rgb_dim": videos.rgb.shape[-1], "prior_dim": priors.tensors["joint"].shape[-1]}
    if videos.flow is not None:
        dims["flow_dim"] = videos.flow.shape[-1]
    full_model_cfg = {**model_cfg, **dims}
    try:
        model = build_model(full_model_cfg).to(device)
    except ConfigError as err:
        raise UserError(where, str(err)) from None
    if info.main:
        log(parameter_summary(model))
    net = model
    if info.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)

    # fused: one kernel for all parameters instead of a dozen small ops per tensor (a tenth of a step on CPU)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay, fused=device.type in FUSED_ADAM_DEVICES)
    # Besides the MLP head (which reads all of it), only the cosine loss reads Z_ft, on the samples of a present class
    loss_reads_z_ft = loss_cfg["cosine"] > 0 and "cosine" in OBJECTIVE_TERMS[loss_cfg["objective"]]
    if int((targets.amax(dim=-1) > 0).sum()) == 0:
        raise UserError("split", "no training video contains a seen class")
    similarity = class_similarity(priors) if cfg.hard_negatives else None

    def pairs_of(epoch: int) -> np.ndarray:
        return epoch_pairs(targets, cfg.negatives_per_positive, np.random.default_rng([cfg.seed, epoch]),
                           cfg.hard_negatives, similarity, cfg.hard_negative_pool)

    n_pairs = len(pairs_of(0))
    steps_per_epoch = math.ceil(math.ceil(n_pairs / info.world) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_warmup_decay(step, total_steps, int(cfg.warmup_fraction * total_steps)))

    out_dir.mkdir(parents=True, exist_ok=True)
    def digest_in(run_precision: str) -> str:
        return config_digest(full_model_cfg, loss_cfg, cfg.to_dict() | {"precision": run_precision},
                             split.to_json(), signature, data)

    digest = digest_in(precision)
    checkpoint_path = out_dir / "checkpoint.pt"
    start_epoch, history = 0, []
    state = _resumable_state(checkpoint_path, log if info.main else lambda *_: None)
    if state is not None:
        trained_in = state.get("precision")
        if state["digest"] != digest and trained_in not in (None, precision) \
                and state["digest"] == digest_in(trained_in):
            raise UserError(checkpoint_path, f"was trained in {trained_in} up to epoch {state['epoch'] + 1} and "
                                             f"train.precision {cfg.precision} is {precision} here: set "
                                             f"train.precision: {trained_in} to resume it, or delete it to start "
                                             "afresh")
        if state["digest"] == digest:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch, history = state["epoch"] + 1, state["history"]
            torch.set_rng_state(state["torch_rng"])
            if info.main:
                log(f"resuming from {checkpoint_path} after epoch {start_epoch}")
        elif info.main:
            log(f"{checkpoint_path} was made with other settings or data: starting afresh")

    live = open_live_log(live_dir, history) if live_dir is not None and info.main else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    saved_at = time.monotonic()
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        pairs = pairs_of(epoch)
        # Every rank takes the same number of pairs, so no rank waits on a gradient sync the others skip.
        pairs = pairs[: len(pairs) // info.world * info.world][info.rank::info.world]
        sums: dict[str, float] = {}
        batches = range(0, len(pairs), cfg.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and info.main),
                   leave=False)
        for start in bar:
            v_idx = torch.from_numpy(pairs[start:start + cfg.batch_size, 0])
            c_idx = torch.from_numpy(pairs[start:start + cfg.batch_size, 1])
            unique, inverse = torch.unique(c_idx, return_inverse=True)
            batch_priors = {k: t.to(device) for k, t in priors.take(unique).items()}
            batch_priors["index"] = inverse.to(device)
            # each video once, however many of its pairs the batch holds
            video_ids, video_index = torch.unique(v_idx, return_inverse=True)
            rgb = videos.rgb[video_ids].to(device)
            flow = videos.flow[video_ids].to(device) if videos.flow is not None else None
            y = targets[v_idx, c_idx].to(device)
            ft_rows = y.amax(dim=-1) > 0 if loss_reads_z_ft else torch.zeros(len(y), dtype=torch.bool, device=device)
            with autocast:
                outputs = net(rgb, flow, batch_priors, video_index=video_index.to(device), ft_rows=ft_rows)
            outputs = {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}
            loss, terms = compute_losses(outputs, y, c_idx.to(device), loss_cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            bar.set_postfix(loss=f"{terms['total']:.3f}")
        n_batches = max(1, len(batches))
        row = {"epoch": epoch + 1, **{name: round(v / n_batches, 6) for name, v in sums.items()},
               "lr": scheduler.get_last_lr()[0]}
        history.append(row)
        if info.main:
            log(f"epoch {epoch + 1}/{cfg.epochs} " + " ".join(f"{k}={v:.4f}" for k, v in row.items()
                                                               if k not in ("epoch", "lr")))
            if epoch in (start_epoch, cfg.epochs - 1) or time.monotonic() - saved_at >= RESUME_EVERY_S:
                save_resume(checkpoint_path, {"digest": digest, "precision": precision, "epoch": epoch,
                                              "history": history,
                                              "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                              "scheduler": scheduler.state_dict(),
                                              "torch_rng": torch.get_rng_state()})
                saved_at = time.monotonic()
            if live is not None:
                log_epoch(live, row)
    model_path = out_dir / "model.pt"
    if info.main:
        save_model(model_path, {"model": model.state_dict(), "model_config": model.config.to_dict(),
                                "loss_config": loss_cfg, "train_config": cfg.to_dict(), "T": T,
                                "seen_classes": classes, "encoders": signature, "digest": digest,
                                "precision": precision,
                                "feature_stats": feature_stats,
                                "trained_on": {"dataset": index.dataset, "protocol": split.protocol,
                                               "split_id": split.split_id}})
    if live is not None:
        live.end()
        if history:
            from pipeline.modelling.plots import plot_training

            plot_training(history, live_dir / "plots" / "training.png")
    if info.world > 1:
        dist.barrier()
    return model_path


def _resumable_state(path: Path, log) -> dict[str, Any] | None:
    """The resume state in ``path``, or None when there is none; a file that is not one (foreign, corrupt,
    crafted) is reported and left unread, and training starts afresh (the run then replaces it)."""
    if not path.exists():
        return None
    try:
        return load_resume(path)
    except UserError as err:
        log(f"{err}; starting afresh")
        return None


def open_live_log(live_dir: Path, history: list[dict[str, float]]) -> Live:
    """A DVCLive logger into ``live_dir`` (``metrics.json`` and ``plots/metrics/``, declared in dvc.yaml), with
    the epochs already done written first, so a resumed run's log is whole. It never saves an experiment or
    writes a dvc.yaml of its own: dvc.yaml declares these files, and ``dvc exp run`` saves experiments."""
    from dvclive import Live

    class StageLive(Live):
        def _init_dvc(self) -> None:
            """Skip DVCLive's repository hooks, which this stage does not use (experiments are saved by
            ``dvc exp run``): outside a DVC repo they run ``dvc init`` in the enclosing git repo, and in a git
            repo without commits they fail on reading HEAD."""

    live = StageLive(dir=str(live_dir), resume=False, report=None, save_dvc_exp=False, dvcyaml=None)
    for row in history:
        log_epoch(live, row)
    return live


def log_epoch(live: Live, row: dict[str, float]) -> None:
    """One epoch's mean loss terms (``loss/<term>``) and final learning rate, at step = epoch (from 1)."""
    live.step = int(row["epoch"])
    for name, value in row.items():
        if name != "epoch":
            live.log_metric(name if name == "lr" else f"loss/{name}", value)
    live.next_step()
