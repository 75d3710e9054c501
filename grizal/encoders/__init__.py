"""Frozen encoders: open_clip (frames, flow images, priors), torchvision video models (frames), RAFT and
classical optical flow, the flow colour wheel.

The names below load their module (open_clip, torch, OpenCV) on first use, so that importing a light part such
as `grizal.encoders.priors.PRIOR_ARRAYS` does not pay for the encoders.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grizal.encoders.clip import (
        ClipEncoder,
        ClipSpec,
        EncoderConfigError,
        load_clip,
        register_offline_configs,
        resolve_device,
        state_dict_sha256,
    )
    from grizal.encoders.flow import ClassicalFlow, FlowSpec, RaftFlow, flow_frame_size, load_flow
    from grizal.encoders.flow_colors import color_wheel, flow_to_color
    from grizal.encoders.priors import PRIOR_ARRAYS, class_prompt, encode_class_priors
    from grizal.encoders.video import SlidingWindows, VideoEncoder, VideoSpec, load_video_encoder

_SOURCES = {
    "grizal.encoders.clip": ("ClipEncoder", "ClipSpec", "EncoderConfigError", "load_clip",
                             "register_offline_configs", "resolve_device", "state_dict_sha256"),
    "grizal.encoders.flow": ("ClassicalFlow", "FlowSpec", "RaftFlow", "flow_frame_size", "load_flow"),
    "grizal.encoders.flow_colors": ("color_wheel", "flow_to_color"),
    "grizal.encoders.priors": ("PRIOR_ARRAYS", "class_prompt", "encode_class_priors"),
    "grizal.encoders.video": ("SlidingWindows", "VideoEncoder", "VideoSpec", "load_video_encoder"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [
    "PRIOR_ARRAYS",
    "ClassicalFlow",
    "ClipEncoder",
    "ClipSpec",
    "EncoderConfigError",
    "FlowSpec",
    "RaftFlow",
    "SlidingWindows",
    "VideoEncoder",
    "VideoSpec",
    "class_prompt",
    "color_wheel",
    "encode_class_priors",
    "flow_frame_size",
    "flow_to_color",
    "load_clip",
    "load_flow",
    "load_video_encoder",
    "register_offline_configs",
    "resolve_device",
    "state_dict_sha256",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
