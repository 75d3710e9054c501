"""Frozen encoders: open_clip (frames, flow images, priors), RAFT and classical optical flow, the flow colour wheel."""

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

__all__ = [
    "PRIOR_ARRAYS",
    "ClassicalFlow",
    "ClipEncoder",
    "ClipSpec",
    "EncoderConfigError",
    "FlowSpec",
    "RaftFlow",
    "class_prompt",
    "color_wheel",
    "encode_class_priors",
    "flow_frame_size",
    "flow_to_color",
    "load_clip",
    "load_flow",
    "register_offline_configs",
    "resolve_device",
    "state_dict_sha256",
]
