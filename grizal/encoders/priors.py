"""Joint prior embeddings of one class: the frozen "joint multimodal unit" in front of the VLE block.

Each of the class's k (sentence, image) pairs becomes one token sequence; `joint_unit` says how:

- `concat`: the sentence's per-token text embeddings and the image's tokens (pooled class token then patches),
  both projected into CLIP's joint space, concatenated. Nothing mixes the two modalities before the VLE.
- `gafnet`: the same joint sequence, then fused as GAFNet's global Fourier self-attention does: a 2-D FFT over
  the pair's real tokens (token axis and feature axis), its real part added back to the sequence, and a layer
  norm without learnable parameters (FNet-style mixing). Every output token depends on every token of both
  modalities; the unit has no parameters, so it stays a cached, frozen feature.
- `pooled`: one token per modality: the pooled CLIP sentence embedding and the pooled image embedding.

Sequences are right-padded to the class's longest with a mask. The pooled embeddings of the sentences and of
the class-name prompt come along for the similarity losses and the class query, and the pooled image embeddings
for the training-free priors-prototype baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from grizal.prior_arrays import PRIOR_ARRAYS  # noqa: F401  (the names it makes; re-exported)

if TYPE_CHECKING:  # the constants and class_prompt are wanted without loading torch and open_clip
    import torch
    from PIL import Image

    from grizal.encoders.clip import ClipEncoder

TEXT_TOKEN, IMAGE_TOKEN = 0, 1
JOINT_UNITS = ("concat", "gafnet", "pooled")


def class_prompt(template: str, name: str) -> str:
    """Fill a prompt template: '{}', '{name}' and '{class}' all stand for the class name."""
    try:
        return template.format(name, name=name, **{"class": name})
    except (IndexError, KeyError, ValueError) as err:
        raise ValueError(f"bad class-name template {template!r}: use '{{}}' for the class name ({err})") from None


def fourier_mix(tokens: torch.Tensor) -> torch.Tensor:
    """(L, E) real tokens -> (L, E): layer_norm(x + Re(FFT2(x))), orthonormal FFT over tokens and features,
    layer norm without weights; parameter-free global mixing of every token with every other."""
    import torch

    mixed = torch.fft.fft2(tokens.double(), norm="ortho").real
    return torch.nn.functional.layer_norm(tokens.double() + mixed, tokens.shape[-1:]).to(tokens.dtype)


def _joint_sequences(clip: ClipEncoder, texts: Sequence[str], pixels: torch.Tensor, joint_unit: str):
    """(joint (k, S, E), joint_mask (k, S), token_type (k, S)) of the k pairs (`pixels` the k preprocessed
    images), as `joint_unit` makes them."""
    import torch

    k = len(texts)
    if joint_unit == "pooled":
        text = clip.encode_texts(texts, normalize=False)  # (k, E)
        image = clip.encode_images(pixels)  # (k, E)
        joint = torch.stack([text, image], dim=1)
        token_type = torch.tensor([[TEXT_TOKEN, IMAGE_TOKEN]] * k, dtype=torch.int8)
        return joint, torch.ones(k, 2, dtype=torch.bool), token_type
    text_tokens, text_mask = clip.text_tokens(texts)  # (k, Lt, E), (k, Lt)
    image_tokens = clip.image_tokens(pixels)  # (k, 1 + P, E)
    n_text, n_image = text_tokens.shape[1], image_tokens.shape[1]
    joint = torch.cat([text_tokens, image_tokens], dim=1)
    joint_mask = torch.cat([text_mask, torch.ones(k, n_image, dtype=torch.bool)], dim=1)
    token_type = torch.cat([torch.full((k, n_text), TEXT_TOKEN, dtype=torch.int8),
                            torch.full((k, n_image), IMAGE_TOKEN, dtype=torch.int8)], dim=1)
    if joint_unit == "gafnet":
        fused = torch.zeros_like(joint)
        for pair in range(k):  # each pair's real tokens only: padding neither mixes in nor gets filled
            real = joint_mask[pair]
            fused[pair, real] = fourier_mix(joint[pair, real])
        joint = fused
    return joint, joint_mask, token_type


def encode_class_priors(
    clip: ClipEncoder, name: str, texts: Sequence[str], images: Sequence[Image.Image], template: str,
    joint_unit: str = "concat",
) -> dict[str, np.ndarray]:
    """Arrays of one class, shapes as in the priors store: joint (k, S, E), joint_mask (k, S),
    token_type (k, S), name_tokens (Sn, E), name_mask (Sn,), name_embedding (E,), text_embedding (k, E),
    image_embedding (k, E); the three embeddings pooled and L2-normalised."""
    import torch

    if joint_unit not in JOINT_UNITS:
        raise ValueError(f"unknown joint unit '{joint_unit}' (use one of {', '.join(JOINT_UNITS)})")
    if not texts:
        raise ValueError(f"class '{name}' has no prior sentences")
    if len(images) != len(texts):
        raise ValueError(f"class '{name}' has {len(texts)} sentences but {len(images)} images; priors come in pairs")
    pixels = torch.stack([clip.preprocess(image.convert("RGB")) for image in images])
    joint, joint_mask, token_type = _joint_sequences(clip, texts, pixels, joint_unit)
    prompt = class_prompt(template, name)
    name_tokens, name_mask = clip.text_tokens([prompt])
    return {
        "joint": joint.numpy().astype(np.float32),
        "joint_mask": joint_mask.numpy(),
        "token_type": token_type.numpy(),
        "name_tokens": name_tokens[0].numpy().astype(np.float32),
        "name_mask": name_mask[0].numpy(),
        "name_embedding": clip.encode_texts([prompt], normalize=True)[0].numpy().astype(np.float32),
        "text_embedding": clip.encode_texts(texts, normalize=True).numpy().astype(np.float32),
        "image_embedding": torch.nn.functional.normalize(clip.encode_images(pixels), dim=-1).numpy().astype(np.float32),
    }
