"""VLE block: the class's generative priors -> Z_CLS (paper Section 3.1, Appendix S.1).

The VLE sequence is built from parts, so every ablation runs the same code path:

- the prior pairs: the first k stored pairs, each `(S, E)` (sentence tokens then image tokens, padded to the
  longest), concatenated along the sequence axis to k*S tokens; image tokens are masked out when
  `use_images` is off, sentence tokens when `use_texts` is off, and each image's patch tokens (all but its first,
  pooled class token) when `image_tokens` is `pooled`;
- the class-name tokens `(Sn, E)`, present when `use_name` is on or `use_texts` is off (then they stand in for
  the sentences).

Each token gets a sinusoidal position (its index among the tokens of its own kind in its own pair, or in
the name sequence, so padding never shifts a real token: neither trailing padding nor the sentence padding
between a pair's text and image tokens), a learnable pair embedding and a learnable kind embedding (text,
image, name); an MLP aligns the result to the model width; a learnable CLS token goes in front (the frozen joint
sequences carry none); N pre-LN transformer blocks with padding masked give Z_m, and Z_CLS is Z_m at the
CLS position. Only the kinds and pairs in use own parameters, so an ablation leaves no unused weights.
"""

from __future__ import annotations

import torch
from torch import nn

from grizal.model.blocks import EncoderBlock, InputProjection, pack_real_tokens, sinusoidal_positions
from grizal.model.config import ModelConfig

TEXT_TOKEN, IMAGE_TOKEN = 0, 1


class VisionLanguageEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.k = config.k
        self.use_texts = config.use_texts
        self.use_images = config.use_images
        self.pooled_images = config.image_tokens == "pooled"
        self.use_name = config.use_name or not config.use_texts
        kinds = [kind for kind, used in (("text", config.use_texts), ("image", config.use_images),
                                         ("name", self.use_name)) if used]
        self.kind_embedding = nn.ParameterDict(
            {kind: nn.Parameter(torch.randn(config.prior_dim) * 0.02) for kind in kinds}
        )
        self.uses_pairs = config.use_texts or config.use_images
        if self.uses_pairs:
            self.pair_embedding = nn.Parameter(torch.randn(config.k, config.prior_dim) * 0.02)
        self.input_mlp = InputProjection(config.prior_dim, config.width, config.dropout)
        self.cls_token = nn.Parameter(torch.randn(config.width) * 0.02)
        self.blocks = nn.ModuleList(
            EncoderBlock(config.width, config.heads, config.hidden, config.dropout)
            for _ in range(config.vle_layers)
        )
        self.norm = nn.LayerNorm(config.width)

    def _pair_part(self, priors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        joint, joint_mask, token_type = priors["joint"], priors["joint_mask"], priors["token_type"]
        stored_k = joint.shape[1]
        if stored_k < self.k:
            raise ValueError(f"the priors hold {stored_k} pairs per class but model.k is {self.k}")
        joint, joint_mask, token_type = joint[:, : self.k], joint_mask[:, : self.k], token_type[:, : self.k]
        batch, k, length, dim = joint.shape
        is_image = token_type == IMAGE_TOKEN
        allowed = torch.zeros_like(is_image)
        if self.use_texts:
            allowed = allowed | ~is_image
        if self.use_images:
            allowed = allowed | is_image
        mask = joint_mask.bool() & allowed
        # a token's position counts only the slots of its own kind before it: the sentence padding between
        # the text and image tokens of a pair must not shift the image tokens
        index = torch.where(is_image, is_image.long().cumsum(-1), (~is_image).long().cumsum(-1)) - 1
        if self.pooled_images:  # an image's first stored token is its pooled class token; its patches stay out
            mask = mask & (~is_image | (index == 0))
        zero = joint.new_zeros(dim)
        text = self.kind_embedding["text"] if self.use_texts else zero
        image = self.kind_embedding["image"] if self.use_images else zero
        kind = torch.where(is_image[..., None], image, text)
        position = sinusoidal_positions(length, dim, joint.device, joint.dtype)[index]
        tokens = joint + position + self.pair_embedding[None, :, None, :] + kind
        return tokens.reshape(batch, k * length, dim), mask.reshape(batch, k * length)

    def _name_part(self, priors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        names, name_mask = priors["name_tokens"], priors["name_mask"]
        position = sinusoidal_positions(names.shape[1], names.shape[2], names.device, names.dtype)
        return names + position + self.kind_embedding["name"], name_mask.bool()

    def forward(self, priors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """priors: the contract's prior dict with batch size C -> (Z_CLS `(C, W)`, Z_m `(C, L, W)`, mask `(C, L)`).

        Z_m is returned over the packed real tokens (CLS first); its order is not the stored order.
        """
        parts = []
        if self.uses_pairs:
            parts.append(self._pair_part(priors))
        if self.use_name:
            parts.append(self._name_part(priors))
        tokens = torch.cat([tokens for tokens, _ in parts], dim=1)
        mask = torch.cat([mask for _, mask in parts], dim=1)
        tokens, mask = pack_real_tokens(tokens, mask)
        x = self.input_mlp(tokens)
        x = torch.cat([self.cls_token.expand(x.shape[0], 1, -1), x], dim=1)
        mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        for block in self.blocks:
            x = block(x, key_mask=mask)
        z_m = self.norm(x)
        return z_m[:, 0], z_m, mask
