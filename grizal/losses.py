"""GRIZAL's training losses (paper Section 3.2) as plain functions, and their weighted sum.

Targets are the per-snippet ground-truth mask `(B, T)` in [0, 1] for the sample's class. The four terms:

- `bce_loss`: binary cross-entropy per snippet, from the logits (numerically stable).
- `temporal_iou_loss`: 1 - soft IoU between the probability curve and the mask, per sample, with additive
  smoothing so an all-zero mask has a defined optimum (all probabilities zero) and a useful gradient.
- `cosine_alignment_loss`: 1 - cos(Z_ft[t], Z_CLS), averaged over the snippets where the action is present.
- `infonce_loss`: contrastive loss between the pooled video embeddings and the class embeddings Z_CLS of the
  batch, both directions; only samples whose video contains the action are anchors, and two samples of the
  same class are never each other's negatives (they are left out of each other's denominators).

Objectives (`loss.objective`), mirroring the paper's ablation:

- `all`: the four weighted terms.
- `supervised`: BCE + temporal IoU only, the per-snippet supervision.
- `self_supervised`: cosine + InfoNCE only. No loss is computed on the per-snippet probabilities against
  the labels; the mask is used only to choose *which* snippets and videos are aligned with the class
  embedding. The detection head then learns solely through InfoNCE's probability-weighted pooling (a
  multiple-instance signal), so expect much weaker localization: that is the ablation's point.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grizal.errors import ConfigError

LOSS_DEFAULTS: dict[str, Any] = {
    "bce": 1.0,
    "tiou": 1.0,
    "cosine": 0.5,
    "infonce": 0.5,
    "temperature": 0.07,
    "tiou_smooth": 1.0,
    "objective": "all",
}
OBJECTIVE_TERMS = {
    "all": ("bce", "tiou", "cosine", "infonce"),
    "supervised": ("bce", "tiou"),
    "self_supervised": ("cosine", "infonce"),
}


def loss_config(section: dict[str, Any] | None) -> dict[str, Any]:
    """The params.yaml `loss:` section with defaults filled in; raises `ConfigError` naming a bad key."""
    section = dict(section or {})
    unknown = sorted(set(section) - set(LOSS_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown loss setting '{unknown[0]}' (known: {', '.join(LOSS_DEFAULTS)})")
    config = {**LOSS_DEFAULTS, **section}
    if config["objective"] not in OBJECTIVE_TERMS:
        raise ConfigError(f"loss.objective must be one of {', '.join(OBJECTIVE_TERMS)}, got {config['objective']!r}")
    for name in ("bce", "tiou", "cosine", "infonce", "tiou_smooth"):
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"loss.{name} must be a number >= 0, got {value!r}")
    temperature = config["temperature"]
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or temperature <= 0:
        raise ConfigError(f"loss.temperature must be a number > 0, got {temperature!r}")
    return config


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over all snippets of the batch."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


def temporal_iou_loss(probs: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over samples of 1 - (I + s) / (U + s), I = sum p*y, U = sum p + sum y - I along time."""
    targets = targets.to(probs.dtype)
    intersection = (probs * targets).sum(dim=-1)
    union = probs.sum(dim=-1) + targets.sum(dim=-1) - intersection
    return (1.0 - (intersection + smooth) / (union + smooth).clamp_min(1e-8)).mean()


def cosine_alignment_loss(z_ft: torch.Tensor, z_cls: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Target-weighted mean of 1 - cos(Z_ft[b, t], Z_CLS[b]); zero (with a graph) when no action is present."""
    weights = targets.to(z_ft.dtype)
    distance = 1.0 - F.cosine_similarity(z_ft, z_cls[:, None, :].expand_as(z_ft), dim=-1, eps=1e-8)
    return (weights * distance).sum() / weights.sum().clamp_min(1e-8)


def infonce_loss(
    video_embedding: torch.Tensor,
    class_embedding: torch.Tensor,
    present: torch.Tensor,
    class_ids: torch.Tensor | None = None,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Symmetric InfoNCE between video embeddings `(B, W)` and class embeddings `(B, W)` (row b: sample b).

    present `(B,)` bool: samples whose video contains the action; only they are anchors, and only their
    videos are candidates. class_ids `(B,)`: samples sharing a class are not negatives of each other (left
    out of the denominator); None means every sample has its own class. Video -> class: each present video
    against every sample's class embedding. Class -> video: each present sample's class embedding against
    the present videos. Each direction averages over the anchors that have at least one negative; zero
    (with a graph) when none has. Known limit: two samples of one video with different classes are
    negatives of each other, although the video contains both actions (the pooled embeddings differ).
    """
    batch = video_embedding.shape[0]
    if class_ids is None:
        class_ids = torch.arange(batch, device=video_embedding.device)
    present = present.bool()
    videos = F.normalize(video_embedding, dim=-1)
    classes = F.normalize(class_embedding, dim=-1)
    similarity = videos @ classes.T / temperature  # [video of sample i, class of sample j]
    same_class = class_ids[:, None] == class_ids[None, :]
    own = torch.eye(batch, dtype=torch.bool, device=similarity.device)
    allowed = ~same_class | own  # the own pair is the positive; other same-class pairs are left out
    positive = similarity.diagonal()
    total = (similarity * 0.0).sum()
    for scores, candidates in ((similarity, allowed), (similarity.T, allowed & present[None, :])):
        anchors = present & (candidates.sum(dim=1) > 1)
        if anchors.any():
            row_loss = torch.logsumexp(scores.masked_fill(~candidates, float("-inf")), dim=1) - positive
            total = total + 0.5 * row_loss[anchors].mean()
    return total


def compute_losses(
    outputs: dict[str, torch.Tensor],
    targets: torch.Tensor,
    class_ids: torch.Tensor | None = None,
    weights: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted training loss: (total, {term: value, ..., "total": value}) for logging.

    outputs: the model's dict; targets `(B, T)` float mask; class_ids `(B,)` ints (see `infonce_loss`);
    weights: the params.yaml `loss:` section (defaults fill missing keys). Terms outside `objective`, or with
    weight 0, are not computed and are absent from the log dict.
    """
    config = loss_config(weights)
    present = targets.amax(dim=-1) > 0.5
    rows = outputs.get("ft_rows", slice(None))  # Z_ft of these samples only (the model's `ft_rows`)
    compute = {
        "bce": lambda: bce_loss(outputs["logits"], targets),
        "tiou": lambda: temporal_iou_loss(outputs["probs"], targets, config["tiou_smooth"]),
        "cosine": lambda: cosine_alignment_loss(outputs["z_ft"], outputs["z_cls"][rows], targets[rows]),
        "infonce": lambda: infonce_loss(
            outputs["video_embedding"], outputs["z_cls"], present, class_ids, config["temperature"]
        ),
    }
    total = outputs["logits"].new_zeros(())
    log: dict[str, float] = {}
    for name in OBJECTIVE_TERMS[config["objective"]]:
        if config[name] == 0:
            continue
        value = compute[name]()
        total = total + config[name] * value
        log[name] = float(value.detach())
    log["total"] = float(total.detach())
    return total, log
