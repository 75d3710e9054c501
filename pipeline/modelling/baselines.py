"""The two training-free baselines: frozen CLIP with a background option, localized and scored as GRIZAL is.

Both compare each snippet's CLIP frame feature with a class prototype in CLIP's joint space:

- ``baseline_name_bg``: the prototype is the class-name prompt's embedding.
- ``baseline_priors``: the prototype is the normalised mean of the name embedding, the k generated sentences'
  and the k generated images' pooled embeddings (what the priors give with no training).

The background option is T3AL's: a snippet is action where it stands above its own video's level, not where a
softmax over the evaluated classes picks the class (that fires wherever anything is visible). Per (video,
class), the cosine curve is min-max normalised within the video (0 at the video's least similar snippet, 1 at
its most similar) and weighted by the video-level class probability: a softmax over the evaluated classes of the
video-mean cosine at CLIP's temperature, so a class absent from the video stays near 0 and no threshold finds it.
Nothing is tuned: the temperature is CLIP's (fixed a priori); the curves are localized with the ``localization``
section updated by ``evaluate.baseline_localization`` (``pipeline.modelling.inference.baseline_localization``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from pipeline.features.inputs import PriorTensors, VideoTensors

CLIP_TEMPERATURE = 100.0  # CLIP's logit scale (exp of its learned log-scale, clamped at 100 in training)
BASELINES = {"baseline_name_bg": "CLIP, class name + background", "baseline_priors": "CLIP, priors prototype"}
"""metrics key -> the results table's row name."""


def name_prototypes(priors: PriorTensors) -> torch.Tensor:
    """(C, E): each class's normalised class-name prompt embedding."""
    import torch

    return torch.nn.functional.normalize(priors.name_embedding.float(), dim=-1)


def priors_prototypes(priors: PriorTensors) -> torch.Tensor:
    """(C, E): the normalised mean of each class's 2k + 1 normalised embeddings (name, sentences, images)."""
    import torch

    unit = torch.nn.functional.normalize
    parts = torch.cat([unit(priors.name_embedding.float(), dim=-1)[:, None],
                       unit(priors.text_embedding.float(), dim=-1), unit(priors.image_embedding.float(), dim=-1)],
                      dim=1)
    return unit(parts.mean(dim=1), dim=-1)


def background_curves(frames: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """(V, T, E) frame features, (C, E) prototypes -> (V, C, T) in [0, 1]: the video-level class probability
    times the cosine curve min-max normalised within the video (a flat curve: 0, nothing stands above it)."""
    import torch

    classes = torch.nn.functional.normalize(prototypes.double(), dim=-1)
    if len(frames) == 0:
        return torch.zeros(0, len(classes), frames.shape[1])
    # one video at a time: a video's curves are the same whichever chunk of videos it is evaluated in
    cosine = torch.stack([classes @ torch.nn.functional.normalize(video.double(), dim=-1).T for video in frames])
    video_prob = torch.softmax(CLIP_TEMPERATURE * cosine.mean(dim=-1), dim=1)  # (V, C)
    low, high = cosine.amin(dim=-1, keepdim=True), cosine.amax(dim=-1, keepdim=True)
    span = high - low
    level = torch.where(span > 0, (cosine - low) / span.clamp_min(torch.finfo(cosine.dtype).tiny),
                        torch.zeros_like(cosine))
    return (video_prob[..., None] * level).clamp(0.0, 1.0).float()


def baseline_curves(videos: VideoTensors, priors: PriorTensors) -> dict[str, np.ndarray]:
    """{metrics key: (V, C, T) curves} of both baselines on raw (not standardised) CLIP frame features."""
    return {"baseline_name_bg": background_curves(videos.rgb, name_prototypes(priors)).numpy(),
            "baseline_priors": background_curves(videos.rgb, priors_prototypes(priors)).numpy()}
