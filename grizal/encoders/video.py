"""A frozen torchvision video model as the frame encoder: clip-level features over a sliding window.

R(2+1)D, R3D, MC3, S3D and MViT (``torchvision.models.video``) with the classifier removed, so each window of
``window`` sampled frames gives one pooled feature (512 for the ResNet family, 1024 for S3D, 768 for MViT).
The window slides over a video's sampled frames one position per ``stride`` frames and each feature is stamped
with the true timestamp of its window's centre frame; windows that reach past either end repeat the first or
last frame, so with stride 1 a video with N sampled frames gets N features, like the per-frame CLIP encoder.
Preprocessing is the weights' own (``weights.transforms()``: resize, centre crop, Kinetics mean/std), whatever
weights are loaded (a torchvision weights name, a local checkpoint, or a seeded random init).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from grizal.encoders.clip import EncoderConfigError, resolve_device, seeded_init, state_dict_sha256
from grizal.precision import cuda_native_bf16

FAMILY = "torchvision_video"
# model (a torchvision.models.video builder) -> feature dim
VIDEO_MODELS: dict[str, int] = {
    "r2plus1d_18": 512,
    "r3d_18": 512,
    "mc3_18": 512,
    "s3d": 1024,
    "mvit_v1_b": 768,
    "mvit_v2_s": 768,
}
# Smallest window each model accepts at its own crop size (S3D pools over 2 temporal steps after 8x
# downsampling; MViT's positional embeddings are for 16 frames).
MIN_WINDOW = {"s3d": 14, "mvit_v1_b": 16, "mvit_v2_s": 16}
FIXED_WINDOW = {"mvit_v1_b": 16, "mvit_v2_s": 16}


@dataclass(frozen=True)
class VideoSpec:
    model: str = "r2plus1d_18"
    weights: str | None = "DEFAULT"  # a torchvision weights name (DEFAULT, KINETICS400_V1), a checkpoint, None
    seed: int = 0  # the random-init seed when `weights` is None
    window: int = 16  # sampled frames per clip
    stride: int = 1  # sampled frames between window positions
    crop_size: int | None = None  # None: the weights' own crop (112 or 224); smaller only for tests
    device: str = "cpu"


def _weights_enum(model: str) -> Any:
    from torchvision.models import get_model_weights

    return get_model_weights(model)


def default_weights_name(model: str) -> str:
    """The name torchvision's DEFAULT weights of `model` have (what a store records for `weights: DEFAULT`)."""
    return str(_weights_enum(model).DEFAULT.name)


def preprocessing(model: str, crop_size: int | None = None) -> dict[str, Any]:
    """The weights' eval transform as plain values: resize ([H, W] exact or [S] shorter side), crop, mean, std."""
    t = _weights_enum(model).DEFAULT.transforms()
    crop, resize = int(t.crop_size[0]), [int(v) for v in t.resize_size]
    if crop_size is not None and crop_size != crop:
        resize, crop = [round(v * crop_size / crop) for v in resize], int(crop_size)
    return {"resize": resize, "crop": crop, "mean": [float(v) for v in t.mean], "std": [float(v) for v in t.std]}


def _headless(model: str, net: torch.nn.Module) -> torch.nn.Module:
    """The network with its classifier replaced so that forward gives the pooled clip feature."""
    if model == "s3d":
        net.classifier = torch.nn.Identity()  # forward then averages (B, 1024, t, h, w) over t, h, w
    elif model.startswith("mvit"):
        net.head = torch.nn.Identity()  # the normalised class token
    else:
        net.fc = torch.nn.Identity()  # after the global average pool
    return net


def _load(spec: VideoSpec) -> tuple[torch.nn.Module, str]:
    from torchvision.models import get_model

    weights = spec.weights
    build: Callable[[Any], torch.nn.Module] = lambda w: get_model(spec.model, weights=w)  # noqa: E731
    if not weights:
        return seeded_init(spec.seed, lambda: build(None)), f"random-init seed {spec.seed}"
    if os.path.isfile(weights):
        net = seeded_init(spec.seed, lambda: build(None))
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a pickle, a truncated file: all mean "cannot load"
            raise EncoderConfigError(f"cannot load checkpoint {weights}: {str(err).splitlines()[0]}") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise EncoderConfigError(f"checkpoint {weights} holds no state dict")
        if not any(k.startswith(("fc.", "classifier.", "head.")) for k in state):
            net = _headless(spec.model, net)  # a checkpoint saved without the classifier
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise EncoderConfigError(f"checkpoint {weights} does not fit {spec.model}: "
                                     f"{str(err).splitlines()[0]}") from None
        return net, weights
    if weights.endswith((".pt", ".pth", ".bin", ".ckpt")) or os.sep in weights:
        raise EncoderConfigError(f"checkpoint file not found: {weights}")
    names = [w.name for w in _weights_enum(spec.model)]
    if weights != "DEFAULT" and weights not in names:
        raise EncoderConfigError(f"unknown weights '{weights}' for {spec.model} (known: DEFAULT, {', '.join(names)}; "
                                 "or a checkpoint file)")
    enum = _weights_enum(spec.model)
    chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    try:
        return build(chosen), chosen.name
    except Exception as err:  # noqa: BLE001 - e.g. no network to download the weights
        raise EncoderConfigError(f"cannot load {spec.model} weights {chosen.name} (torchvision downloads them to "
                                 f"its cache once; put the file there or pass a checkpoint): "
                                 f"{str(err).splitlines()[0]}") from None


def load_video_encoder(spec: VideoSpec) -> VideoEncoder:
    if spec.model not in VIDEO_MODELS:
        raise EncoderConfigError(f"unknown torchvision video model '{spec.model}' (use one of "
                                 f"{', '.join(VIDEO_MODELS)})")
    if spec.window < 1 or spec.stride < 1:
        raise EncoderConfigError(f"window and stride must be >= 1, got {spec.window} and {spec.stride}")
    if spec.model in FIXED_WINDOW and spec.window != FIXED_WINDOW[spec.model]:
        raise EncoderConfigError(f"{spec.model} reads clips of exactly {FIXED_WINDOW[spec.model]} frames, "
                                 f"got window {spec.window}")
    if spec.crop_size is None and spec.window < MIN_WINDOW.get(spec.model, 1):
        raise EncoderConfigError(f"{spec.model} needs a window of at least {MIN_WINDOW[spec.model]} frames, "
                                 f"got {spec.window}")
    net, weights = _load(spec)
    return VideoEncoder(_headless(spec.model, net), spec, weights)


class VideoEncoder:
    """A frozen torchvision video model; fp32 on the CPU (3D convolutions gain little from CPU bf16), bf16
    autocast on a CUDA GPU that runs bf16 natively."""

    family = FAMILY

    def __init__(self, model: torch.nn.Module, spec: VideoSpec, weights: str):
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.weights = weights
        self.weights_sha256 = state_dict_sha256(self.model)
        self.preprocess_cfg = preprocessing(spec.model, spec.crop_size)
        self._mean = torch.tensor(self.preprocess_cfg["mean"]).view(1, 3, 1, 1, 1)
        self._std = torch.tensor(self.preprocess_cfg["std"]).view(1, 3, 1, 1, 1)

    @property
    def name(self) -> str:
        return self.spec.model

    @property
    def dim(self) -> int:
        return VIDEO_MODELS[self.spec.model]

    @property
    def precision(self) -> str:
        return "bf16" if cuda_native_bf16(self.device) else "fp32"

    def describe(self) -> dict[str, Any]:
        """What identifies the features this encoder makes (stored in the feature stores' attributes)."""
        return {
            "family": FAMILY,
            "model": self.spec.model,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "precision": self.precision,
            "dim": self.dim,
            "window": self.spec.window,
            "stride": self.spec.stride,
            "preprocess": self.preprocess_cfg,
        }

    def prepare(self, image: Image.Image) -> np.ndarray:
        """PIL RGB -> (S, S, 3) uint8: resized and centre-cropped as the weights' transform does."""
        resize, crop = self.preprocess_cfg["resize"], self.preprocess_cfg["crop"]
        w, h = image.size
        if len(resize) == 2:
            size = (resize[1], resize[0])
        else:
            scale = resize[0] / min(w, h)
            size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
        image = image.resize(size, Image.BILINEAR) if image.size != size else image
        left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
        return np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)

    def sliding_windows(self) -> SlidingWindows:
        return SlidingWindows(self.spec.window, self.spec.stride)

    @torch.inference_mode()
    def encode_prepared(self, clips: np.ndarray) -> torch.Tensor:
        """(B, W, S, S, 3) uint8 windows -> (B, D) float32 on the CPU."""
        x = torch.as_tensor(clips)
        if self.device.type == "cuda":
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).permute(0, 4, 1, 2, 3).float().div(255)
        x = (x - self._mean.to(x.device)) / self._std.to(x.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.model(x)
        return out.float().cpu()


class SlidingWindows:
    """Windows of `window` frames over a stream of frames, one per `stride` frames, centred on a frame.

    ``push`` returns the windows that became complete, ``finish`` the rest (the last frame repeated); each is
    (centre timestamp, tuple of the window's frames). Frames are shared between overlapping windows, never
    copied, and only the last `window` frames are kept.
    """

    def __init__(self, window: int, stride: int = 1):
        self.window, self.stride = window, stride
        self.before = window // 2
        self.after = window - 1 - self.before
        self.frames: dict[int, tuple[float, Any]] = {}
        self.seen = 0
        self.next_centre = 0
        self.last_centre = -1

    def _make(self, centre: int, last: int) -> tuple[float, tuple[Any, ...]]:
        self.last_centre = centre
        picks = (min(max(i, 0), last) for i in range(centre - self.before, centre + self.after + 1))
        return self.frames[centre][0], tuple(self.frames[i][1] for i in picks)

    def push(self, timestamp: float, frame: Any) -> list[tuple[float, tuple[Any, ...]]]:
        self.frames[self.seen] = (timestamp, frame)
        self.frames.pop(self.seen - self.window, None)
        self.seen += 1
        out = []
        while self.next_centre + self.after <= self.seen - 1:
            out.append(self._make(self.next_centre, self.seen - 1))
            self.next_centre += self.stride
        return out

    def finish(self) -> list[tuple[float, tuple[Any, ...]]]:
        last, out = self.seen - 1, []
        while self.next_centre <= last:
            out.append(self._make(self.next_centre, last))
            self.next_centre += self.stride
        if last >= 0 and self.last_centre != last:  # the features reach the video's last sampled frame
            out.append(self._make(last, last))
        return out
