"""Contrastive pretraining of the demo world's open_clip model: open_clip's own model code and `ClipLoss`.

AdamW as open_clip trains (betas 0.9/0.98, no weight decay on gains, biases and the logit scale), linear warmup
then cosine decay, the logit scale clamped to ln 100, the token embedding frozen (the corpus's few hundred words
would otherwise pull the rows of the words it uses away from the rest). Deterministic for a seed on one machine:
the only randomness is the seeded initialisation and the seeded batch order.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.loss import ClipLoss

from grizal.encoders.clip import register_offline_configs, seeded_init
from pipeline.common import atomic_write_bytes, die_with_parent
from pipeline.pretraining.corpus import CorpusConfig, backgrounds, make_stills

MODEL = "grizal-demo"  # the shipped open_clip config (grizal/encoders/grizal-demo.json) the stage trains
CHUNK = 1000  # stills rendered per task


@dataclass(frozen=True)
class PretrainConfig:
    seed: int = 0
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.1
    precision: str = "auto"  # autocast: auto is fp32 on the CPU (this small model trains no faster in bf16)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)

    @classmethod
    def from_section(cls, section: dict[str, Any], image_size: int) -> PretrainConfig:
        """From a checked ``pretrain`` section (``params_schema``); the corpus shares its seed."""
        corpus_keys = {f.name for f in fields(CorpusConfig)} - {"seed", "image_size"}
        corpus = CorpusConfig(seed=section["seed"], image_size=image_size,
                              **{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()
                                 if k in corpus_keys})
        own = {k: v for k, v in section.items() if k in {f.name for f in fields(cls)} - {"corpus"}}
        return cls(**own, corpus=corpus)


def model_image_size(name: str = MODEL) -> int:
    register_offline_configs()
    size = open_clip.get_model_config(name)["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, list | tuple) else size)


def build_model(seed: int, name: str = MODEL) -> torch.nn.Module:
    register_offline_configs()
    logging.disable(logging.WARNING)  # open_clip warns that the weights are random: they are about to be trained
    try:
        return seeded_init(seed, lambda: open_clip.create_model(name, pretrained=None))
    finally:
        logging.disable(logging.NOTSET)


def _render_chunk(args: tuple[CorpusConfig, int, int]) -> tuple[np.ndarray, list[str]]:
    cfg, start, stop = args
    images, captions, _ = make_stills(cfg, start, stop, backgrounds(cfg))
    return images, captions


def render_corpus(cfg: CorpusConfig, workers: int = 1) -> tuple[np.ndarray, list[str]]:
    """All stills (n, S, S, 3) uint8 and captions; the same for any number of worker processes."""
    chunks = [(cfg, start, min(start + CHUNK, cfg.n_stills)) for start in range(0, cfg.n_stills, CHUNK)]
    if workers <= 1 or len(chunks) == 1:
        parts = [_render_chunk(chunk) for chunk in chunks]
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            parts = list(pool.map(_render_chunk, chunks))
    return np.concatenate([p[0] for p in parts]), [c for p in parts for c in p[1]]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    model.token_embedding.weight.requires_grad_(False)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    exempt = [p for n, p in named if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
              or "embedding" in n]
    decay = [p for _, p in named if not any(p is q for q in exempt)]
    return torch.optim.AdamW([{"params": exempt, "weight_decay": 0.0},
                              {"params": decay, "weight_decay": cfg.weight_decay}],
                             lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32, normalised as the extractor does (the OpenAI mean and std,
    those of the model's preprocessing)."""
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float().div(255) - mean) / std


def batch_order(n: int, cfg: PretrainConfig) -> np.ndarray:
    """(steps, batch_size) indices: epochs of seeded permutations."""
    rng = np.random.default_rng([cfg.seed, 7])
    need = cfg.steps * cfg.batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(-(-need // n))])
    return order[:need].reshape(cfg.steps, cfg.batch_size)


def tokenize(captions: list[str], name: str = MODEL) -> torch.Tensor:
    register_offline_configs()
    return open_clip.get_tokenizer(name)(captions)


def train(model: torch.nn.Module, images: np.ndarray, tokens: torch.Tensor, cfg: PretrainConfig,
          on_step: Callable[[int, float], None] | None = None, precision: str = "fp32") -> list[float]:
    """cfg.steps steps of contrastive training on the CPU (the model in train mode: its BatchNorm layers learn
    their statistics), under bf16 autocast when `precision` (resolved) is bf16; returns the loss of every step
    and leaves the model in eval mode."""
    pixels = torch.from_numpy(images)
    optimizer = make_optimizer(model, cfg)
    loss_fn = ClipLoss()
    losses = []
    model.train()
    for step, idx in enumerate(batch_order(len(images), cfg)):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx_t = torch.from_numpy(idx)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            image_features, text_features, logit_scale = model(normalize(pixels[idx_t]), tokens[idx_t])[:3]
        loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


def save_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """The fp32 state_dict, written atomically: `open_clip.create_model(MODEL, pretrained=path)` loads it."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().float() if v.is_floating_point() else v for k, v in model.state_dict().items()},
               buffer)
    atomic_write_bytes(path, buffer.getvalue())


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
