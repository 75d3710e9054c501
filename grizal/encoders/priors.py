"""Joint prior embeddings of one class: the frozen "joint multimodal unit" of the VLE block (GAFNet-style).

For each of the class's k (sentence, image) pairs, the sentence's per-token text embeddings and the image's
tokens (pooled class token then patches), both projected into CLIP's joint space, are concatenated into one
sequence; sequences are right-padded to the class's longest with a mask. The pooled embeddings of the
sentences and of the class-name prompt come along for the similarity losses and the class query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from grizal.prior_arrays import PRIOR_ARRAYS  # noqa: F401  (the names it makes; re-exported)

if TYPE_CHECKING:  # the constants and class_prompt are wanted without loading torch and open_clip
    from PIL import Image

    from grizal.encoders.clip import ClipEncoder

TEXT_TOKEN, IMAGE_TOKEN = 0, 1


def class_prompt(template: str, name: str) -> str:
    """Fill a prompt template: '{}', '{name}' and '{class}' all stand for the class name."""
    try:
        return template.format(name, name=name, **{"class": name})
    except (IndexError, KeyError, ValueError) as err:
        raise ValueError(f"bad class-name template {template!r}: use '{{}}' for the class name ({err})") from None


def encode_class_priors(
    clip: ClipEncoder, name: str, texts: Sequence[str], images: Sequence[Image.Image], template: str
) -> dict[str, np.ndarray]:
    """Arrays of one class, shapes as in the priors store: joint (k, S, E), joint_mask (k, S),
    token_type (k, S), name_tokens (Sn, E), name_mask (Sn,), name_embedding (E,), text_embedding (k, E)."""
    import torch

    if not texts:
        raise ValueError(f"class '{name}' has no prior sentences")
    if len(images) != len(texts):
        raise ValueError(f"class '{name}' has {len(texts)} sentences but {len(images)} images; priors come in pairs")
    text_tokens, text_mask = clip.text_tokens(texts)  # (k, Lt, E), (k, Lt)
    pixels = torch.stack([clip.preprocess(image.convert("RGB")) for image in images])
    image_tokens = clip.image_tokens(pixels)  # (k, 1 + P, E)
    k, n_text, n_image = len(texts), text_tokens.shape[1], image_tokens.shape[1]
    joint = torch.cat([text_tokens, image_tokens], dim=1)
    joint_mask = torch.cat([text_mask, torch.ones(k, n_image, dtype=torch.bool)], dim=1)
    token_type = torch.cat([torch.full((k, n_text), TEXT_TOKEN, dtype=torch.int8),
                            torch.full((k, n_image), IMAGE_TOKEN, dtype=torch.int8)], dim=1)
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
    }
