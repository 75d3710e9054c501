"""The frozen open_clip encoder: loading (pretrained tag, local checkpoint or seeded random init) and encoding.

Frames and flow images go through `encode_images`; the priors use the per-token outputs of both towers
(`text_tokens`, `image_tokens`) and the pooled text embedding (`encode_texts`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from PIL import Image
from torchvision.transforms import Compose, Normalize

from grizal import devices
from grizal.precision import PrecisionError, resolve_precision

OFFLINE_CONFIGS = Path(__file__).parent  # grizal-tiny.json (random weights), grizal-demo.json (the pretrain stage's)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class EncoderConfigError(ValueError):
    """A model name, weights tag, checkpoint path or precision that cannot be used."""


def register_offline_configs() -> None:
    """Make every open_clip config shipped beside this module (`grizal-tiny`, `grizal-demo`) known to open_clip
    (idempotent)."""
    known = set(open_clip.list_models())
    for path in sorted(OFFLINE_CONFIGS.glob("*.json")):
        if path.stem not in known:
            open_clip.add_model_config(path)


@dataclass(frozen=True)
class ClipSpec:
    model: str = "grizal-tiny"
    pretrained: str | None = None  # a pretrained tag, a local checkpoint file, or None for random init
    seed: int = 0  # the random-init seed when `pretrained` is None
    precision: str = "auto"  # the model is cast to this dtype (autocast is slower for ViTs on CPU); auto: see
    # grizal.precision
    device: str = "cpu"


def resolve_device(device: str | None) -> torch.device:
    """``grizal.devices.resolve_device``, its errors as encoder setting errors."""
    try:
        return devices.resolve_device(device)
    except devices.DeviceError as err:
        raise EncoderConfigError(str(err)) from None


def state_dict_sha256(module: torch.nn.Module) -> str:
    """A checksum of the weights: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def seeded_init(seed: int, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module with random weights from `seed`, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _resolve_precision(precision: str, device: torch.device) -> str:
    try:
        return resolve_precision(precision, device)
    except PrecisionError as err:
        raise EncoderConfigError(str(err)) from None


def _create_with_weights(spec: ClipSpec) -> tuple[torch.nn.Module, str]:
    name, pretrained = spec.model, spec.pretrained
    schema = name.split(":", 1)[0] + ":" if name.startswith(("hf-hub:", "local-dir:")) else None
    if schema is None and open_clip.get_model_config(name) is None:
        raise EncoderConfigError(
            f"unknown open_clip model '{name}' (e.g. ViT-B-32, ViT-B-32-quickgelu, ViT-L-14, grizal-tiny; "
            "all: open_clip.list_models())"
        )
    if schema is not None:
        try:
            return open_clip.create_model(name), name
        except Exception as err:  # noqa: BLE001 - open_clip raises many kinds; all mean "cannot load"
            raise EncoderConfigError(f"cannot load '{name}': {err}") from None
    if not pretrained:
        logging.disable(logging.WARNING)  # open_clip warns that the weights are random: that is the point
        try:
            model = seeded_init(spec.seed, lambda: open_clip.create_model(name, pretrained=None))
        finally:
            logging.disable(logging.NOTSET)
        return model, f"random-init seed {spec.seed}"
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained in tags:
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        if tag_cfg.get("quick_gelu", False) and not open_clip.get_model_config(name).get("quick_gelu", False):
            raise EncoderConfigError(
                f"'{pretrained}' weights were trained with QuickGELU: use model '{name}-quickgelu'"
            )
        where = f"tag '{pretrained}'"
    elif os.path.isfile(pretrained):
        where = f"checkpoint {pretrained}"
    elif pretrained.endswith(CHECKPOINT_SUFFIXES) or os.sep in pretrained:
        raise EncoderConfigError(f"checkpoint file not found: {pretrained}{_demo_checkpoint_hint(pretrained)}")
    else:
        raise EncoderConfigError(
            f"unknown pretrained tag '{pretrained}' for '{name}' (known: {', '.join(tags) or 'none'})"
        )
    logging.disable(logging.ERROR)  # open_clip logs its own line before raising; ours below says it all
    try:
        return open_clip.create_model(name, pretrained=pretrained), pretrained
    except Exception as err:  # noqa: BLE001
        local = "" if where.startswith("checkpoint") else (
            f"; without a network, set pretrained to a local checkpoint file of these weights (e.g. "
            f"/path/to/{name}.pt: .pt, .pth, .bin or .safetensors)")
        raise EncoderConfigError(f"cannot load {where} for '{name}': {str(err).splitlines()[0]}{local}") from None
    finally:
        logging.disable(logging.NOTSET)


def _demo_checkpoint_hint(path: str) -> str:
    """Why the demo CLIP's checkpoint may be missing, and what a real data set uses instead."""
    if Path(path).name != "clip.pt" or "pretrain" not in Path(path).parts:
        return ""
    return (" (the pretrain stage trains this demo-world CLIP only when prepare.dataset is demo; for real videos set "
            "extract.clip.model: ViT-B-32-quickgelu and extract.clip.pretrained: openai, or a local checkpoint file "
            "of those weights where nothing can be downloaded)")


class ClipEncoder:
    """A frozen open_clip model cast to one precision on one device."""

    def __init__(self, model: torch.nn.Module, spec: ClipSpec, weights: str, weights_sha256: str):
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.precision = _resolve_precision(spec.precision, self.device)  # what runs: never 'auto'
        self.dtype = DTYPES[self.precision]
        self.model = model.eval().requires_grad_(False).to(device=self.device, dtype=self.dtype)
        self.weights = weights
        self.weights_sha256 = weights_sha256
        cfg = dict(getattr(self.model.visual, "preprocess_cfg", {}) or {})
        self.preprocess_cfg = {
            "size": cfg.get("size", self.model.visual.image_size),
            "mean": tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
            "std": tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
            "interpolation": cfg.get("interpolation", "bicubic"),
            "resize_mode": cfg.get("resize_mode", "shortest"),
            "fill_color": cfg.get("fill_color", 0),
        }
        c = self.preprocess_cfg
        transform = open_clip.image_transform(
            c["size"], is_train=False, mean=c["mean"], std=c["std"], resize_mode=c["resize_mode"],
            interpolation=c["interpolation"], fill_color=c["fill_color"],
        )
        # The PIL part (resize, crop) runs per image in the decode thread; to-tensor and normalise run once
        # per batch (same arithmetic as torchvision's, so the result is identical).
        steps = list(transform.transforms)
        if not (isinstance(steps[-1], Normalize) and type(steps[-2]).__name__ in ("MaybeToTensor", "ToTensor")):
            raise EncoderConfigError(f"'{spec.model}': unexpected preprocessing {transform}")
        self._pil_steps = Compose(steps[:-2])
        self._mean = torch.tensor(steps[-1].mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(steps[-1].std, dtype=torch.float32).view(1, 3, 1, 1)
        self._tokenizer = None

    @property
    def name(self) -> str:
        return self.spec.model

    @property
    def dim(self) -> int:
        return int(self.model.visual.output_dim)

    def describe(self) -> dict[str, Any]:
        """What identifies the features this encoder makes (stored in the feature stores' attributes)."""
        return {
            "model": self.spec.model,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "precision": self.precision,
            "dim": self.dim,
            "preprocess": {k: list(v) if isinstance(v, tuple) else v for k, v in self.preprocess_cfg.items()},
        }

    def prepare(self, image: Image.Image) -> np.ndarray:
        """The geometric part of the model's eval transform: PIL RGB -> (S, S, 3) uint8, resized and cropped."""
        return np.array(self._pil_steps(image), dtype=np.uint8)

    def normalize(self, prepared: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 from `prepare` -> (B, 3, S, S) float32 scaled to [0, 1] and normalised."""
        x = torch.as_tensor(prepared)
        x = x.permute(0, 3, 1, 2).float().div(255)
        return (x - self._mean.to(x.device)) / self._std.to(x.device)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The model's whole eval transform (resize, crop, normalise): PIL RGB -> (3, S, S) float32."""
        return self.normalize(self.prepare(image)[None])[0]

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(device=self.device, dtype=self.dtype, non_blocking=True)

    @torch.inference_mode()
    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, E) float32 on the CPU (projected, not normalised)."""
        return self.model.encode_image(self.to_device(batch)).float().cpu()

    @torch.inference_mode()
    def encode_prepared(self, prepared: np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 from `prepare` -> (B, E) float32 on the CPU; on a GPU, the uint8 batch is what
        crosses the bus (pinned) and normalising happens there."""
        x = torch.from_numpy(np.ascontiguousarray(prepared))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        return self.model.encode_image(self.normalize(x).to(self.dtype)).float().cpu()

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(self.spec.model)
        return self._tokenizer

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens, normalize=normalize).float().cpu()

    def _text_tower(self):
        model = self.model
        tower = model if hasattr(model, "token_embedding") else getattr(model, "text", None)
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
        if tower is None or not all(hasattr(tower, a) for a in needed) or getattr(tower, "cls_emb", None) is not None:
            raise EncoderConfigError(f"'{self.spec.model}': per-token text embeddings need a CLIP-style text tower")
        pool = getattr(model, "text_pool_type", getattr(tower, "pool_type", "argmax"))
        if pool != "argmax":
            raise EncoderConfigError(f"'{self.spec.model}': per-token text embeddings need end-of-text pooling")
        return tower

    @torch.inference_mode()
    def text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token embeddings after ln_final, projected into the joint space.

        Returns (B, L, E) float32 and a (B, L) bool mask (True = a real token, start to end-of-text), trimmed
        to the longest real length among `texts`.
        """
        tower = self._text_tower()
        tokens = self.tokenizer(list(texts)).to(self.device)
        x = tower.token_embedding(tokens).to(self.dtype)
        x = x + tower.positional_embedding[: x.shape[1]].to(self.dtype)
        x = tower.transformer(x, attn_mask=getattr(tower, "attn_mask", None))
        x = tower.ln_final(x)
        proj = tower.text_projection
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
        lengths = tokens.argmax(dim=-1) + 1  # the end-of-text token has the largest id
        longest = int(lengths.max())
        mask = torch.arange(longest, device=self.device)[None, :] < lengths[:, None]
        return x[:, :longest].float().cpu(), mask.cpu()

    @torch.inference_mode()
    def image_tokens(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, 1 + P, E) in the joint space, token 0 the pooled embedding
        (`encode_images`'s). A ViT: the class token then the patch tokens, after ln_post, projected. A
        ModifiedResNet: the attention pool's outputs at its mean query then at every position of the last
        feature map (H*W)."""
        visual = self.model.visual
        if isinstance(visual, ModifiedResNet):
            return resnet_image_tokens(visual, self.to_device(batch)).float().cpu()
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None or visual.proj is None:
            raise EncoderConfigError(f"'{self.spec.model}': image tokens need an open_clip ViT or ModifiedResNet "
                                     "image tower")
        visual.output_tokens = True
        try:
            pooled, patches = visual(self.to_device(batch))
        finally:
            visual.output_tokens = False
        return torch.cat([pooled[:, None], patches @ visual.proj], dim=1).float().cpu()


def resnet_image_tokens(visual: ModifiedResNet, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) -> (B, 1 + H*W, E): open_clip's `AttentionPool2d` run with every position as a query
    (it keeps only the first, the mean of the feature map), so token 0 is the tower's pooled output."""
    x = visual.stem(x)
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
    pool = visual.attnpool
    x = x.flatten(start_dim=2).permute(2, 0, 1)  # (HW, B, C)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0) + pool.positional_embedding[:, None, :].to(x.dtype)
    x, _ = torch.nn.functional.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias, use_separate_proj_weight=True, training=False, need_weights=False)
    return x.permute(1, 0, 2)


def load_clip(spec: ClipSpec) -> ClipEncoder:
    """Load an open_clip model by name with a pretrained tag, a local checkpoint, or seeded random weights."""
    register_offline_configs()
    device = resolve_device(spec.device)
    _resolve_precision(spec.precision, device)
    model, weights = _create_with_weights(spec)
    return ClipEncoder(model, spec, weights, state_dict_sha256(model))
