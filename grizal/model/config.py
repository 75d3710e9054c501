"""The model's configuration: the `model:` section of params.yaml as a checked dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from grizal.errors import ConfigError

IMAGE_TOKENS = ("patches", "pooled")  # model.image_tokens
HEADS = ("mlp", "matching")  # model.head
CHOICES = {"image_tokens": IMAGE_TOKENS, "head": HEADS}


@dataclass(frozen=True)
class ModelConfig:
    """Every setting of the learnable GRIZAL layers (params.yaml `model:`).

    Input dims: `rgb_dim` and `flow_dim` are the frozen frame/flow feature sizes D, `prior_dim` the joint
    prior token size E. Switches mirror the paper's ablations: `use_flow` (OFE block and the cross-attention
    to flow), `use_fourier` (the FFT MLP of the F-Transformer), `use_images` (generated image tokens),
    `use_texts` (generated sentences; when off, the class-name tokens take their place), `use_name` (the
    class-name tokens join the sentences and images), `k` (how many of the stored prior pairs are read; the
    first k). `pool_flow`: the video side of the InfoNCE loss pools Z_rgb + Z_optical instead of Z_rgb alone,
    so the contrast between classes also teaches what each class's motion looks like in the flow.
    `image_tokens`: how a generated image enters the VLE: `patches`, every stored token of the image (its pooled
    class token and each patch token: the paper's form), or `pooled`, its pooled class token alone (one token
    per image, a fraction of the VLE's work).
    `head`: what turns each snippet into a logit: `mlp`, the paper's MLP on Z_ft, or `matching`, a learnt scale times
    the cosine between the class-agnostic snippet (Z_rgb + Z_optical) and Z_CLS, plus a learnt bias (CLIP-style
    matching; the F-Transformer then shapes the snippets through the cosine loss only).
    """

    rgb_dim: int = 512
    flow_dim: int = 512
    prior_dim: int = 512
    width: int = 512
    heads: int = 8
    vle_layers: int = 7
    ofe_layers: int = 2
    ft_layers: int = 1
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    k: int = 4
    use_flow: bool = True
    use_fourier: bool = True
    use_images: bool = True
    use_texts: bool = True
    use_name: bool = False
    pool_flow: bool = False
    image_tokens: str = "patches"
    head: str = "mlp"

    @classmethod
    def from_dict(cls, config: dict[str, Any] | None) -> ModelConfig:
        config = dict(config or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ConfigError(f"unknown model setting '{unknown[0]}' (known: {', '.join(known)})")
        values = {}
        for name, value in config.items():
            kind = type(known[name].default)
            if kind is str:
                if value not in CHOICES[name]:
                    raise ConfigError(f"model.{name} must be one of {', '.join(CHOICES[name])}, got {value!r}")
            elif kind is bool:
                if not isinstance(value, bool):
                    raise ConfigError(f"model.{name} must be true or false, got {value!r}")
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"model.{name} must be an integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"model.{name} must be a number, got {value!r}")
            values[name] = kind(value)
        built = cls(**values)
        built._check()
        return built

    def _check(self) -> None:
        for name in ("rgb_dim", "flow_dim", "prior_dim", "width", "heads", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("vle_layers", "ofe_layers", "ft_layers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} must be 0 or more, got {getattr(self, name)}")
        if self.ft_layers < 1:
            raise ConfigError("model.ft_layers must be at least 1 (the F-Transformer is the mainstream)")
        if self.width % self.heads:
            raise ConfigError(f"model.width ({self.width}) must be divisible by model.heads ({self.heads})")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"model.mlp_ratio must be positive, got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden(self) -> int:
        return max(1, round(self.width * self.mlp_ratio))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
