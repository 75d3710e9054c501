"""OFE block: the CLIP-encoded optical-flow sequence -> MLP -> N transformer blocks -> Z_optical."""

from __future__ import annotations

import torch
from torch import nn

from grizal.model.blocks import EncoderBlock, InputProjection, sinusoidal_positions
from grizal.model.config import ModelConfig


class OpticalFlowEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_mlp = InputProjection(config.flow_dim, config.width, config.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(config.width, config.heads, config.hidden, config.dropout)
            for _ in range(config.ofe_layers)
        )
        self.norm = nn.LayerNorm(config.width)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        """flow `(B, T, D_flow)` -> Z_optical `(B, T, W)`; sinusoidal time positions, no maximum T."""
        x = self.input_mlp(flow)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
