"""`build_model(config)` from the params.yaml `model:` dict, and the one-line parameter summary."""

from __future__ import annotations

from typing import Any

from torch import nn

from grizal.model.config import ModelConfig
from grizal.model.grizal import GRIZAL


def build_model(config: dict[str, Any] | ModelConfig | None = None) -> GRIZAL:
    """A freshly initialised GRIZAL; raises `ConfigError` (a ValueError) naming a bad key."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(config)
    return GRIZAL(config)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _human(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.2f}M"
    if count >= 1_000:
        return f"{count / 1e3:.1f}k"
    return str(count)


def parameter_summary(model: nn.Module) -> str:
    """One line: parameters per top-level block, the total and how many are trainable."""
    blocks = [f"{name}={_human(_count(child))}" for name, child in model.named_children() if _count(child)]
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        blocks.append(f"other={_human(own)}")
    total = _count(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"parameters: {' '.join(blocks)} | total={_human(total)} trainable={_human(trainable)}"
