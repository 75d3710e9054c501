"""The F-Transformer's Fourier MLP on known signals."""

import math

import pytest
import torch
from torch import nn

from grizal.model.config import ModelConfig
from grizal.model.f_transformer import FourierMLP, FTransformerLayer


def fourier(width=6):
    torch.manual_seed(0)
    return FourierMLP(width, hidden=16).eval()


def tone(length, frequency, width=6, seed=0):
    """A real signal with energy only at `frequency` (cycles per sequence), random amplitude/phase per channel."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)[None, :, None]
    amplitude = torch.rand(1, 1, width, generator=gen) + 0.5
    phase = torch.rand(1, 1, width, generator=gen) * 2 * math.pi
    return amplitude * torch.cos(2 * math.pi * frequency * t / length + phase)


@pytest.mark.parametrize("length", [1, 2, 7, 16])
class _PassThrough(nn.Module):
    """Stands in for the MLP: returns the bin's [real, imaginary] part of its input unchanged."""

    def forward(self, features):
        return features[..., : features.shape[-1] // 2]


@pytest.mark.parametrize("length", [1, 2, 7, 16])
def test_fft_and_inverse_are_exact_for_odd_and_even_lengths(length):
    block = fourier()
    block.mlp = _PassThrough()
    x = torch.randn(2, length, 6)
    torch.testing.assert_close(block(x), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("length", "frequency"), [(32, 3), (33, 5), (16, 1)])
def test_a_pure_tone_stays_a_tone_of_the_same_frequency(length, frequency):
    block = fourier()
    with torch.no_grad():
        out = block(tone(length, frequency))
    spectrum = torch.fft.rfft(out, dim=1, norm="ortho").abs()
    others = torch.cat([spectrum[:, :frequency], spectrum[:, frequency + 1:]], dim=1)
    assert spectrum[:, frequency].abs().max() > 1e-2  # the MLP does act on the tone...
    assert others.max() < 1e-5 * spectrum[:, frequency].max()  # ...and creates no other frequency


def test_a_constant_signal_stays_constant_in_time():
    block = fourier()
    x = torch.ones(1, 9, 6) * torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, 3.0])
    with torch.no_grad():
        out = block(x)
    torch.testing.assert_close(out, out[:, :1].expand_as(out), atol=1e-6, rtol=1e-5)


def test_hand_set_weights_make_an_exact_low_pass_filter():
    """fc1 -> [(1 - w) x, -(1 - w) x], fc2 -> difference; GELU(z) - GELU(-z) = z makes it linear: gain 1 - w."""
    width, length = 6, 32
    block = FourierMLP(width, hidden=4 * width)
    eye = torch.eye(2 * width)
    with torch.no_grad():
        block.mlp.fc1.weight.copy_(torch.cat([torch.cat([eye, -eye], 1), torch.cat([-eye, eye], 1)], 0))
        block.mlp.fc2.weight.copy_(torch.cat([eye, -eye], 1))
        low, high = tone(length, 2, width, seed=1), tone(length, 12, width, seed=2)
        out = block(low + high)
    expected = (1 - 2 / 16) * low + (1 - 12 / 16) * high
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_the_layer_uses_the_fourier_branch_only_when_switched_on():
    config = dict(width=8, heads=2, mlp_ratio=2.0, dropout=0.0)
    torch.manual_seed(0)
    on = FTransformerLayer(ModelConfig(**config, use_fourier=True, use_flow=False)).eval()
    torch.manual_seed(0)
    off = FTransformerLayer(ModelConfig(**config, use_fourier=False, use_flow=False)).eval()
    assert on.fourier is not None and off.fourier is None
    off.load_state_dict({k: v for k, v in on.state_dict().items() if "fourier" not in k})
    x, z_cls = torch.randn(2, 10, 8), torch.randn(2, 8)
    with torch.no_grad():
        assert not torch.allclose(on(x, z_cls, None), off(x, z_cls, None), atol=1e-4)
