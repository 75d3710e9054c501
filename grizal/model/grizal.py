"""The GRIZAL model: VLE (priors -> Z_CLS), OFE (flow -> Z_optical) and the mainstream
(frames -> MLP -> Z_rgb -> F-Transformer -> Z_ft -> MLP -> sigmoid), one probability per snippet. With
`model.head: matching` the logit is instead a learnt affine map of cos(Z_rgb + Z_optical, Z_CLS)."""

from __future__ import annotations

import torch
from torch import nn

from grizal.model.blocks import FeedForward, InputProjection, sinusoidal_positions
from grizal.model.config import ModelConfig
from grizal.model.f_transformer import FTransformer
from grizal.model.ofe import OpticalFlowEncoder
from grizal.model.vle import VisionLanguageEncoder

PRIOR_KEYS = ("joint", "joint_mask", "token_type", "name_tokens", "name_mask")


class MatchingHead(nn.Module):
    """Logits `scale * cos(snippet, Z_CLS) + bias` `(B, T)` for class-agnostic snippets `(B, T, W)` and Z_CLS
    `(B, W)`: the matching of CLIP-style zero-shot localizers. An unseen class is scored by how close its prior
    embedding lies to each snippet, so what is learnt about seen classes transfers through the shared space
    rather than through an MLP fitted to the seen classes' timing. Scale and bias start where a cosine of 0.5
    is an even chance, the probability rising there by 0.25 per 0.1 of cosine."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(-5.0))

    def forward(self, snippets: torch.Tensor, z_cls: torch.Tensor) -> torch.Tensor:
        cos = nn.functional.cosine_similarity(snippets, z_cls[:, None, :], dim=-1)
        return self.scale * cos + self.bias


class GRIZAL(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.vle = VisionLanguageEncoder(config)
        self.ofe = OpticalFlowEncoder(config) if config.use_flow else None
        self.rgb_mlp = InputProjection(config.rgb_dim, config.width, config.dropout)
        self.f_transformer = FTransformer(config)
        if config.head == "mlp":
            self.head = FeedForward(config.width, config.width, config.dropout, out_dim=1)
        else:
            self.head = MatchingHead()

    def encode_priors(self, priors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Z_CLS `(B, W)` for the prior dict; with `priors["index"]` `(B,)` the other tensors hold C distinct
        classes and the VLE runs once per class, then Z_CLS is gathered per sample."""
        missing = [key for key in PRIOR_KEYS if key not in priors]
        if missing:
            raise ValueError(f"the priors dict lacks {', '.join(missing)}")
        z_cls, _, _ = self.vle(priors)
        index = priors.get("index")
        return z_cls if index is None else z_cls[index]

    def forward(
        self,
        rgb: torch.Tensor,
        flow: torch.Tensor | None,
        priors: dict[str, torch.Tensor] | None = None,
        *,
        z_cls: torch.Tensor | None = None,
        video_index: torch.Tensor | None = None,
        ft_rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """rgb, flow `(B, T, D)` (flow may be None when `use_flow` is off); priors: the contract's dict, or
        instead `z_cls` `(B, W)` from `encode_priors` (evaluation: encode every class once, then reuse).

        Returns `logits`, `probs` `(B, T)`; `z_cls` `(B, W)`; `z_ft`, `z_rgb` `(B, T, W)`; `video_embedding`
        `(B, W)`: the probability-weighted mean of Z_rgb over time, the video side of the InfoNCE loss.
        Z_rgb, not Z_ft: Z_ft has Z_CLS added inside the F-Transformer, so it would match its own class
        embedding by construction (the loss starts near zero and teaches nothing). Pooling the class-agnostic
        Z_rgb makes InfoNCE pull frame features of the action towards the class's prior embedding, and the
        weighting by the model's own probabilities teaches the head where the action is, even without
        snippet labels. With `pool_flow`, Z_optical is added before pooling (still class-agnostic): then the
        contrast between the classes of a batch also needs each class's motion, not only its look.

        Training shortcuts that change no value: with `video_index` `(B,)`, rgb and flow hold V distinct videos
        and sample b reads video `video_index[b]`, so the class-agnostic Z_rgb and Z_optical are computed once
        per video (a batch holds a video's positive and negative pairs). With `ft_rows` `(B,)` bool and
        `head: matching`, whose logits do not read Z_ft, the F-Transformer runs on those samples only (the
        ones a loss reads Z_ft of): `z_ft` is then `(B', T, W)` for them and the dict also holds `ft_rows`.
        """
        if rgb.dim() != 3:
            raise ValueError(f"rgb features must be (B, T, D), got shape {tuple(rgb.shape)}")
        if rgb.shape[-1] != self.config.rgb_dim:
            raise ValueError(f"rgb features have dim {rgb.shape[-1]} but model.rgb_dim is {self.config.rgb_dim}")
        if (priors is None) == (z_cls is None):
            raise ValueError("give the model either the priors dict or a precomputed z_cls, not both or neither")
        if z_cls is None:
            z_cls = self.encode_priors(priors)
        samples = rgb.shape[0] if video_index is None else video_index.shape[0]
        if z_cls.shape[0] != samples:
            raise ValueError(f"{samples} videos but {z_cls.shape[0]} prior entries in the batch")
        z_optical = None
        if self.ofe is not None:
            if flow is None or flow.shape[:2] != rgb.shape[:2]:
                got = None if flow is None else tuple(flow.shape)
                raise ValueError(f"flow features must be (B, T, D) matching rgb {tuple(rgb.shape)}, got {got}")
            z_optical = self.ofe(flow)
        z_rgb = self.rgb_mlp(rgb)
        if video_index is not None:
            z_rgb = z_rgb[video_index]
            z_optical = z_optical[video_index] if z_optical is not None else None
        positions = sinusoidal_positions(z_rgb.shape[1], z_rgb.shape[2], z_rgb.device, z_rgb.dtype)
        outputs = {}
        if self.config.head == "mlp":
            z_ft = self.f_transformer(z_rgb + positions, z_cls, z_optical)
            logits = self.head(z_ft).squeeze(-1)
        else:
            logits = self.head(z_rgb + z_optical if z_optical is not None else z_rgb, z_cls)
            if ft_rows is None:
                z_ft = self.f_transformer(z_rgb + positions, z_cls, z_optical)
            else:
                rows = ft_rows.bool()
                if rows.any():
                    z_ft = self.f_transformer((z_rgb + positions)[rows], z_cls[rows],
                                              z_optical[rows] if z_optical is not None else None)
                else:
                    z_ft = z_rgb.new_zeros((0, *z_rgb.shape[1:]))
                outputs["ft_rows"] = rows
        probs = torch.sigmoid(logits)
        weights = probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-6)
        pooled = z_rgb + z_optical if self.config.pool_flow and z_optical is not None else z_rgb
        video_embedding = torch.einsum("bt,btw->bw", weights, pooled)
        return {"logits": logits, "probs": probs, "z_cls": z_cls, "z_ft": z_ft, "z_rgb": z_rgb,
                "video_embedding": video_embedding, **outputs}
