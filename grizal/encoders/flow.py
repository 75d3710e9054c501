"""Optical flow between consecutive sampled frames: RAFT (torchvision) or a classical weight-free method (OpenCV).

RAFT runs batched on tensors, its weights in fp32 (a bf16-cast RAFT fails) under an optional autocast: 'auto'
is bf16 where the device runs bf16 natively (``grizal.precision``), none elsewhere. Farneback and DIS need no
weights and run per pair on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights, raft_large, raft_small

from grizal.encoders.clip import EncoderConfigError, resolve_device, seeded_init, state_dict_sha256
from grizal.encoders.flow_defaults import FARNEBACK_DEFAULTS
from grizal.precision import PrecisionError, resolve_precision

RAFT_MODELS = {"raft_small": (raft_small, Raft_Small_Weights), "raft_large": (raft_large, Raft_Large_Weights)}
CLASSICAL_METHODS = ("farneback", "dis")
FLOW_METHODS = (*CLASSICAL_METHODS, *RAFT_MODELS)
AUTOCAST_DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "none": None}  # auto: resolved
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# RAFT works on 1/8 resolution feature maps and pools its correlation volume three more times.
RAFT_MULTIPLE = 8
RAFT_MIN_SIDE = 128


def flow_frame_size(width: int, height: int, max_side: int | None, multiple: int = 1, min_side: int = 1
                    ) -> tuple[int, int]:
    """The (width, height) flow is computed at: longest side at most `max_side` (but the shortest at least
    `min_side`, which wins), keeping the aspect ratio, each side rounded to a multiple of `multiple`."""
    scale = 1.0 if not max_side else min(1.0, max_side / max(width, height))
    if min(width, height) * scale < min_side:
        scale = min_side / min(width, height)

    def fit(side: int) -> int:
        return max(min_side, multiple, int(round(side * scale / multiple)) * multiple)

    return fit(width), fit(height)


@dataclass(frozen=True)
class FlowSpec:
    method: str = "farneback"
    max_side: int | None = 128
    raft_weights: str | None = None  # a torchvision weights tag (DEFAULT, C_T_SKHT_V2, ...) or a local file
    num_flow_updates: int = 12
    autocast: str = "auto"
    seed: int = 0  # random-init seed for RAFT without weights (tests only: random RAFT flow is noise)
    dis_preset: str = "medium"
    farneback: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def validate(self) -> None:
        if self.method not in FLOW_METHODS:
            raise EncoderConfigError(f"unknown flow method '{self.method}' (use one of {', '.join(FLOW_METHODS)})")
        if self.max_side is not None and self.max_side < 8:
            raise EncoderConfigError(f"flow max_side must be at least 8, got {self.max_side}")
        if self.method == "dis" and self.dis_preset not in DIS_PRESETS:
            raise EncoderConfigError(f"unknown DIS preset '{self.dis_preset}' (use one of {', '.join(DIS_PRESETS)})")
        unknown = set(self.farneback) - set(FARNEBACK_DEFAULTS)
        if unknown:
            raise EncoderConfigError(
                f"unknown Farneback setting(s) {sorted(unknown)} (known: {list(FARNEBACK_DEFAULTS)})"
            )
        if self.autocast not in AUTOCAST_DTYPES:
            raise EncoderConfigError(f"unknown autocast '{self.autocast}' (use one of {', '.join(AUTOCAST_DTYPES)})")
        if self.num_flow_updates < 1:
            raise EncoderConfigError("num_flow_updates must be at least 1")

    @property
    def is_raft(self) -> bool:
        return self.method in RAFT_MODELS


class ClassicalFlow:
    """Farneback or DIS dense flow on grayscale frames; one instance per thread (DIS keeps state)."""

    batched = False

    def __init__(self, spec: FlowSpec):
        spec.validate()
        self.spec = spec
        self.method = spec.method
        self.farneback = {**FARNEBACK_DEFAULTS, **spec.farneback}
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[spec.dis_preset]) if spec.method == "dis" else None

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return flow_frame_size(width, height, self.spec.max_side)

    def describe(self) -> dict[str, Any]:
        settings = self.farneback if self.method == "farneback" else {"preset": self.spec.dis_preset}
        return {"method": self.method, "max_side": self.spec.max_side, "settings": dict(settings)}

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Two (H, W, 3) uint8 RGB frames -> (2, H, W) float32 flow in pixels (x then y)."""
        a = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY)
        if self._dis is not None:
            flow = self._dis.calc(a, b, None)
        else:
            f = self.farneback
            flow = cv2.calcOpticalFlowFarneback(
                a, b, None, f["pyr_scale"], int(f["levels"]), int(f["winsize"]), int(f["iterations"]),
                int(f["poly_n"]), f["poly_sigma"], 0,
            )
        return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def _load_raft_weights(spec: FlowSpec) -> tuple[torch.nn.Module, str]:
    build, weights_enum = RAFT_MODELS[spec.method]
    source = spec.raft_weights
    if not source:
        return seeded_init(spec.seed, lambda: build(weights=None, progress=False)), f"random-init seed {spec.seed}"
    if os.path.isfile(source):
        model = build(weights=None, progress=False)
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            model.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - torch raises many kinds; all mean "not these weights"
            raise EncoderConfigError(f"cannot load RAFT weights from {source}: {str(err).splitlines()[0]}") from None
        return model, source
    tags = [w.name for w in weights_enum] + ["DEFAULT"]
    if source not in tags:
        if source.endswith((".pth", ".pt")) or os.sep in source:
            raise EncoderConfigError(f"RAFT weights file not found: {source}")
        raise EncoderConfigError(f"unknown {spec.method} weights '{source}' (use one of {', '.join(tags)} or a file)")
    try:
        return build(weights=weights_enum[source], progress=False), source
    except Exception as err:  # noqa: BLE001 - a download failure offline, a corrupt cache file...
        raise EncoderConfigError(f"cannot load {spec.method} weights '{source}': {str(err).splitlines()[0]}") from None


def resolve_autocast(autocast: str, device: torch.device) -> str:
    """RAFT's autocast to run: 'auto' -> 'bf16' where the device runs bf16 natively, else 'none'."""
    if autocast == "fp16" and device.type == "cpu":
        raise EncoderConfigError("fp16 autocast is for GPUs; use auto, bf16 or none on the CPU")
    if autocast != "auto":
        return autocast
    try:
        return "bf16" if resolve_precision("auto", device) == "bf16" else "none"
    except PrecisionError as err:
        raise EncoderConfigError(str(err)) from None


class RaftFlow:
    """torchvision RAFT, fp32 weights, optional autocast; batched over frame pairs of one size."""

    batched = True

    def __init__(self, model: torch.nn.Module, spec: FlowSpec, weights: str, weights_sha256: str):
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.weights = weights
        self.weights_sha256 = weights_sha256
        self.autocast = resolve_autocast(spec.autocast, self.device)  # what runs: never 'auto'
        self.autocast_dtype = AUTOCAST_DTYPES[self.autocast]

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return flow_frame_size(width, height, self.spec.max_side, RAFT_MULTIPLE, RAFT_MIN_SIDE)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.spec.method,
            "max_side": self.spec.max_side,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "num_flow_updates": self.spec.num_flow_updates,
            "autocast": self.autocast,
        }

    @torch.inference_mode()
    def __call__(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 RGB pairs -> (B, 2, H, W) float32 flow on the CPU."""

        def prepare(frames: torch.Tensor) -> torch.Tensor:
            if self.device.type == "cuda":
                frames = frames.pin_memory()
            frames = frames.to(self.device, non_blocking=True)
            return frames.float() / 127.5 - 1.0  # RAFT expects [-1, 1]

        a, b = prepare(previous), prepare(current)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            flows = self.model(a, b, num_flow_updates=self.spec.num_flow_updates)
        return flows[-1].float().cpu()


def load_flow(spec: FlowSpec) -> ClassicalFlow | RaftFlow:
    spec.validate()
    if not spec.is_raft:
        return ClassicalFlow(spec)
    resolve_device(spec.device)
    model, weights = _load_raft_weights(spec)
    return RaftFlow(model, spec, weights, state_dict_sha256(model))
