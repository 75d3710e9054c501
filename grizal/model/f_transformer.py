"""F-Transformer: the mainstream's Fourier-augmented transformer (paper Section 3.1).

One layer, post-LayerNorm as the paper describes it:

1. multi-head self-attention on Z_rgb, residual, LayerNorm;
2. Z_CLS added point-wise to every time step;
3. Fourier MLP (`use_fourier`): FFT along time, an MLP on the frequency-domain features, inverse FFT back,
   residual, LayerNorm;
4. cross-attention (`use_flow`): this sequence as query, Z_optical as key and value, residual, LayerNorm;
5. self-attention, residual, LayerNorm; MLP, residual, LayerNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from grizal.model.blocks import FeedForward, MultiHeadAttention
from grizal.model.config import ModelConfig


class FourierMLP(nn.Module):
    """rFFT along time -> one MLP on every frequency bin's channels -> inverse rFFT.

    Each bin's features are its [real, imaginary] channels and the same scaled by the bin's normalised
    frequency w = bin / (T / 2) in [0, 1], so the first layer acts as W_a + w * W_b: the block can treat low
    and high frequencies differently (e.g. learn to smooth) while its weights still fit any T, odd or even.
    The MLP has no biases and GELU(0) = 0, so an empty bin stays empty: the block re-weights and mixes
    channels within each frequency but never creates a frequency absent from its input. The orthonormal FFT
    keeps magnitudes independent of T; the inverse is told T, so odd lengths come back exactly.
    """

    def __init__(self, width: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.mlp = FeedForward(4 * width, hidden, dropout, out_dim=2 * width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x `(B, T, W)` real -> `(B, T, W)` real."""
        length, width = x.shape[1], x.shape[2]
        spectrum = torch.fft.rfft(x.float(), dim=1, norm="ortho")
        bins = spectrum.shape[1]
        frequency = torch.arange(bins, device=x.device, dtype=torch.float32) / max(length / 2, 1.0)
        features = torch.cat([spectrum.real, spectrum.imag], dim=-1)
        features = torch.cat([features, features * frequency[None, :, None]], dim=-1)
        # the FFT runs in float32 (no half-precision FFT on CPU), the MLP in the input dtype
        features = self.mlp(features.to(x.dtype)).float()
        spectrum = torch.complex(features[..., :width], features[..., width:])
        return torch.fft.irfft(spectrum, n=length, dim=1, norm="ortho").to(x.dtype)


class FTransformerLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        width, heads, hidden, dropout = config.width, config.heads, config.hidden, config.dropout
        self.self_attention = MultiHeadAttention(width, heads)
        self.norm_self = nn.LayerNorm(width)
        self.fourier = FourierMLP(width, hidden, dropout) if config.use_fourier else None
        self.norm_fourier = nn.LayerNorm(width) if config.use_fourier else None
        self.cross_attention = MultiHeadAttention(width, heads) if config.use_flow else None
        self.norm_cross = nn.LayerNorm(width) if config.use_flow else None
        self.refine_attention = MultiHeadAttention(width, heads)
        self.norm_refine = nn.LayerNorm(width)
        self.mlp = FeedForward(width, hidden, dropout)
        self.norm_mlp = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, z_cls: torch.Tensor, z_optical: torch.Tensor | None) -> torch.Tensor:
        x = self.norm_self(x + self.dropout(self.self_attention(x)))
        x = x + z_cls[:, None, :]
        if self.fourier is not None:
            x = self.norm_fourier(x + self.dropout(self.fourier(x)))
        if self.cross_attention is not None:
            if z_optical is None:
                raise ValueError("the model uses optical flow (model.use_flow) but no flow features were given")
            x = self.norm_cross(x + self.dropout(self.cross_attention(x, context=z_optical)))
        x = self.norm_refine(x + self.dropout(self.refine_attention(x)))
        return self.norm_mlp(x + self.dropout(self.mlp(x)))


class FTransformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(FTransformerLayer(config) for _ in range(config.ft_layers))

    def forward(self, z_rgb: torch.Tensor, z_cls: torch.Tensor, z_optical: torch.Tensor | None) -> torch.Tensor:
        """Z_rgb `(B, T, W)`, Z_CLS `(B, W)`, Z_optical `(B, T, W)` or None -> Z_ft `(B, T, W)`."""
        x = z_rgb
        for layer in self.layers:
            x = layer(x, z_cls, z_optical)
        return x
