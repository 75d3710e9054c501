"""What each loss term teaches: its share of the training gradient, during training on the cached features.

    python -m benchmarks.loss_gradients [--split 0] [--epochs 20] [--probe-batches 8]

Run after `dvc repro extract_priors` (it reads params.yaml, cache/prepare and cache/features). It trains GRIZAL on
an open split's seen classes as the train stage does (the same pairs, batches, Adam and schedule), and at the start
and after chosen epochs it takes the gradient of each weighted loss term alone over the same probe batches and
prints, per term: its value, its gradient norm as a share of the terms' summed norms, and the cosine between its
gradient and the total's (1: it pulls where the total pulls; 0: it is orthogonal to the rest). It also prints the
mean cos(Z_ft, Z_CLS) on action and on background snippets: the cosine term asks action snippets to be near Z_CLS,
and the F-Transformer adds Z_CLS into Z_ft, so a term that starts near its minimum, or whose gradient is a sliver of
the total, teaches little. The paper's question (issue 23): is the term worth keeping?
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from grizal.losses import (
    OBJECTIVE_TERMS,
    bce_loss,
    cosine_alignment_loss,
    infonce_loss,
    loss_config,
    temporal_iou_loss,
)
from grizal.model import build_model
from pipeline.common import load_params
from pipeline.data.build import build_split, load_prepared
from pipeline.features.inputs import FeatureSet, fit_feature_stats, snippet_targets, standardized
from pipeline.modelling.fit import TrainConfig, class_similarity, epoch_pairs, linear_warmup_decay, seed_everything


def _terms(outputs, y, c_idx, cfg) -> dict[str, torch.Tensor]:
    present = y.amax(dim=-1) > 0.5
    every = {
        "bce": lambda: bce_loss(outputs["logits"], y),
        "tiou": lambda: temporal_iou_loss(outputs["probs"], y, cfg["tiou_smooth"]),
        "cosine": lambda: cosine_alignment_loss(outputs["z_ft"], outputs["z_cls"], y),
        "infonce": lambda: infonce_loss(outputs["video_embedding"], outputs["z_cls"], present, c_idx,
                                        cfg["temperature"]),
    }
    return {name: cfg[name] * every[name]() for name in OBJECTIVE_TERMS[cfg["objective"]] if cfg[name] != 0}


def _forward(model, videos, priors, targets, batch):
    v_idx, c_idx = torch.from_numpy(batch[:, 0]), torch.from_numpy(batch[:, 1])
    unique, inverse = torch.unique(c_idx, return_inverse=True)
    batch_priors = {**priors.take(unique), "index": inverse}
    flow = videos.flow[v_idx] if videos.flow is not None else None
    return model(videos.rgb[v_idx], flow, batch_priors), targets[v_idx, c_idx], c_idx


def probe(model, videos, priors, targets, batches, cfg) -> dict[str, dict[str, float]]:
    params = [p for p in model.parameters() if p.requires_grad]
    stats: dict[str, dict[str, list[float]]] = {}
    alignment = {"action": [], "background": []}
    for batch in batches:
        outputs, y, c_idx = _forward(model, videos, priors, targets, batch)
        terms = _terms(outputs, y, c_idx, cfg)
        grads = {}
        for name, value in terms.items():
            g = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            grads[name] = torch.cat([(x if x is not None else torch.zeros_like(p)).flatten()
                                     for x, p in zip(g, params, strict=True)])
        total = sum(grads.values())
        norms = {name: float(g.norm()) for name, g in grads.items()}
        for name, g in grads.items():
            entry = stats.setdefault(name, {"value": [], "share": [], "cos_total": []})
            entry["value"].append(float(terms[name].detach()))
            entry["share"].append(norms[name] / max(sum(norms.values()), 1e-12))
            entry["cos_total"].append(float(torch.nn.functional.cosine_similarity(g, total, dim=0)))
        with torch.no_grad():
            cos = torch.nn.functional.cosine_similarity(outputs["z_ft"], outputs["z_cls"][:, None, :], dim=-1)
            alignment["action"] += cos[y > 0.5].tolist()
            alignment["background"] += cos[y <= 0.5].tolist()
    out = {name: {key: float(np.mean(v)) for key, v in entry.items()} for name, entry in stats.items()}
    out["cos(Z_ft, Z_CLS)"] = {key: float(np.mean(v)) if v else float("nan") for key, v in alignment.items()}
    return out


def report(epoch: int, measured: dict[str, dict[str, float]]) -> None:
    terms = [name for name in measured if name != "cos(Z_ft, Z_CLS)"]
    print(f"after epoch {epoch}: " + "; ".join(
        f"{name} value {m['value']:.3f} grad share {100 * m['share']:.1f}% cos to total {m['cos_total']:+.2f}"
        for name, m in ((n, measured[n]) for n in terms)))
    align = measured["cos(Z_ft, Z_CLS)"]
    print(f"  mean cos(Z_ft, Z_CLS): action snippets {align['action']:+.3f}, background {align['background']:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepare", default="cache/prepare")
    parser.add_argument("--features", default="cache/features")
    parser.add_argument("--split", type=int, default=0, help="open-set split id")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="default: train.epochs")
    parser.add_argument("--probe-batches", type=int, default=8)
    parser.add_argument("--every", type=int, default=5, help="probe after every this many epochs")
    args = parser.parse_args()

    values = load_params(args.params)
    index, _ = load_prepared(Path(args.prepare))
    split = build_split(index, {**values["prepare"], "protocol": "open", "split_id": args.split})
    cfg = TrainConfig.from_dict({**values["train"], "seed": args.seed})
    loss_cfg = loss_config(values.get("loss", {}))
    epochs = args.epochs or cfg.epochs
    seed_everything(cfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    use_flow = bool(values["model"].get("use_flow", True))
    feature_set = FeatureSet.open(args.features)
    ids, classes = list(split.train_videos), list(split.seen)
    videos = feature_set.videos(ids, {v: index.videos[v].duration for v in ids}, cfg.T or feature_set.T, use_flow)
    priors = feature_set.priors(classes)
    targets = snippet_targets(index, videos.ids, classes, videos.times)
    videos, priors = standardized(videos, priors, fit_feature_stats(videos, priors))
    dims = {"rgb_dim": videos.rgb.shape[-1], "prior_dim": priors.tensors["joint"].shape[-1]}
    if videos.flow is not None:
        dims["flow_dim"] = videos.flow.shape[-1]
    model = build_model({**values["model"], **dims})
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay)
    similarity = class_similarity(priors) if cfg.hard_negatives else None

    def pairs_of(epoch: int) -> np.ndarray:
        return epoch_pairs(targets, cfg.negatives_per_positive, np.random.default_rng([cfg.seed, epoch]),
                           cfg.hard_negatives, similarity, cfg.hard_negative_pool)

    probe_pairs = pairs_of(10_000)  # a fixed set of pairs, not an epoch's
    batches = [probe_pairs[i:i + cfg.batch_size] for i in range(0, len(probe_pairs), cfg.batch_size)]
    batches = batches[: args.probe_batches]
    steps = math.ceil(len(pairs_of(0)) / cfg.batch_size) * epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_warmup_decay(step, steps, int(cfg.warmup_fraction * steps)))
    print(f"split {args.split}, seed {cfg.seed}, {len(videos.ids)} training videos, {len(classes)} seen classes, "
          f"loss weights {({k: loss_cfg[k] for k in ('bce', 'tiou', 'cosine', 'infonce')})}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    model.train()
    report(0, probe(model, videos, priors, targets, batches, loss_cfg))
    for epoch in range(epochs):
        pairs = pairs_of(epoch)
        for start in range(0, len(pairs), cfg.batch_size):
            outputs, y, c_idx = _forward(model, videos, priors, targets, pairs[start:start + cfg.batch_size])
            loss = sum(_terms(outputs, y, c_idx, loss_cfg).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
        if (epoch + 1) % args.every == 0 or epoch + 1 == epochs:
            report(epoch + 1, probe(model, videos, priors, targets, batches, loss_cfg))


if __name__ == "__main__":
    main()
