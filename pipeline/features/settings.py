"""The `extract` section of params.yaml and the frozen encoders it names (shared by the stages, the
standalone CLI and `grizal localize`)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from pipeline.common import UserError
from pipeline.features.engine import Extractors, describe_flow
from pipeline.features.store import settings_sha256

if TYPE_CHECKING:  # the encoders (open_clip, torch, OpenCV) load when they are built
    from grizal.encoders.clip import ClipEncoder

# The paper's setup for anyone's videos; params.yaml's `extract` section overrides any of it.
DEFAULTS: dict[str, Any] = {
    "index": "cache/prepare/index.json",
    "priors_json": "cache/priors/priors.json",
    "out": {
        "rgb": "cache/features/rgb.zarr",
        "flow": "cache/features/flow.zarr",
        "priors": "cache/features/priors.zarr",
    },
    "device": "auto",
    "T": 100,
    "max_failure_fraction": 0.05,
    "queue_size": 128,
    "decode_workers": 2,
    "clip": {"model": "ViT-B-32-quickgelu", "pretrained": "openai", "seed": 0, "precision": "bf16",
             "batch_size": 64},
    "frames": {"sample_fps": 5.0, "min_frames": 2},
    "flow": {
        "method": "raft_large",
        "max_side": 256,
        "raft_weights": "DEFAULT",
        "num_flow_updates": 12,
        "autocast": "bf16",
        "seed": 0,
        "batch_size": 8,
        "wheel_max_magnitude": None,
        "dis_preset": "medium",
        "farneback": {},
    },
    "priors": {"name_template": "a video of a person {}"},
}

def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "farneback":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _number(cfg: dict[str, Any], dotted: str, where: str, *, minimum: float, integer: bool = False,
            optional: bool = False, maximum: float | None = None) -> float | int | None:
    value: Any = cfg
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None and optional:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum
    ok = ok and (not integer or float(value).is_integer()) and (maximum is None or value <= maximum)
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise UserError(where, f"extract.{dotted} must be {kind} {bound}{' or null' if optional else ''}, "
                               f"got {value!r}")
    return int(value) if integer else float(value)


def extract_config(params: dict[str, Any] | None, where: str = "params.yaml") -> dict[str, Any]:
    """The `extract` section over the defaults, checked."""
    section = (params or {}).get("extract", {})
    if not isinstance(section, dict):
        raise UserError(where, "section 'extract' must be a mapping")
    cfg = _merge(DEFAULTS, section)
    _number(cfg, "frames.sample_fps", where, minimum=1e-3, optional=True)
    _number(cfg, "frames.min_frames", where, minimum=2, integer=True)
    _number(cfg, "clip.batch_size", where, minimum=1, integer=True)
    _number(cfg, "clip.seed", where, minimum=0, integer=True)
    _number(cfg, "flow.batch_size", where, minimum=1, integer=True)
    _number(cfg, "flow.max_side", where, minimum=8, integer=True, optional=True)
    _number(cfg, "flow.wheel_max_magnitude", where, minimum=1e-6, optional=True)
    _number(cfg, "T", where, minimum=1, integer=True)
    _number(cfg, "queue_size", where, minimum=1, integer=True)
    _number(cfg, "decode_workers", where, minimum=1, integer=True)
    _number(cfg, "max_failure_fraction", where, minimum=0, maximum=1)
    return cfg


def build_clip(cfg: dict[str, Any], where: str) -> ClipEncoder:
    from grizal.encoders.clip import ClipSpec, EncoderConfigError, load_clip

    c = cfg["clip"]
    try:
        return load_clip(ClipSpec(model=str(c["model"]), pretrained=c["pretrained"] or None, seed=int(c["seed"]),
                                  precision=str(c["precision"]), device=str(cfg["device"])))
    except EncoderConfigError as err:
        raise UserError(where, f"extract.clip: {err}") from None


def build_extractors(cfg: dict[str, Any], kinds: tuple[str, ...], where: str,
                     clip: ClipEncoder | None = None) -> Extractors:
    """Load the frozen encoders the config names; the stages and `grizal localize` share this."""
    from grizal.encoders.clip import EncoderConfigError
    from grizal.encoders.flow import FlowSpec, load_flow

    clip = clip or build_clip(cfg, where)
    flow = None
    f = cfg["flow"]
    if "flow" in kinds:
        try:
            flow = load_flow(FlowSpec(
                method=str(f["method"]), max_side=f["max_side"], raft_weights=f["raft_weights"] or None,
                num_flow_updates=int(f["num_flow_updates"]), autocast=str(f["autocast"]), seed=int(f["seed"]),
                dis_preset=str(f["dis_preset"]), farneback=dict(f["farneback"] or {}), device=str(cfg["device"]),
            ))
        except EncoderConfigError as err:
            raise UserError(where, f"extract.flow: {err}") from None
    return Extractors(
        clip=clip, kinds=kinds, flow=flow, sample_fps=cfg["frames"]["sample_fps"],
        min_frames=int(cfg["frames"]["min_frames"]), clip_batch_size=int(cfg["clip"]["batch_size"]),
        flow_batch_size=int(f["batch_size"]), wheel_max_magnitude=f["wheel_max_magnitude"],
        queue_size=int(cfg["queue_size"]), decode_workers=int(cfg["decode_workers"]),
    )


def _spec_source(weights: str) -> tuple[str | None, int]:
    """A stored weights description back to (pretrained, seed): 'random-init seed 3' -> (None, 3)."""
    prefix = "random-init seed "
    return (None, int(weights[len(prefix):])) if weights.startswith(prefix) else (weights, 0)


def extractors_from_stores(rgb_attrs: dict[str, Any], flow_attrs: dict[str, Any] | None = None,
                           device: str = "auto", where: str = "feature stores") -> Extractors:
    """The encoders that made existing stores (e.g. those a checkpoint was trained on), rebuilt and checked
    against the stored weights checksums, so that one new video gets features comparable to the stores'."""
    from grizal.encoders.clip import ClipSpec, EncoderConfigError, load_clip
    from grizal.encoders.flow import FlowSpec, load_flow

    settings = rgb_attrs.get("settings", {})
    clip_cfg = settings.get("clip")
    if not clip_cfg:
        raise UserError(where, f"features were {rgb_attrs.get('encoder', 'imported')}: no encoder to rebuild")
    pretrained, seed = _spec_source(clip_cfg["weights"])
    try:
        clip = load_clip(ClipSpec(model=clip_cfg["model"], pretrained=pretrained, seed=seed,
                                  precision=clip_cfg["precision"], device=device))
    except EncoderConfigError as err:
        raise UserError(where, f"cannot rebuild the frame encoder: {err}") from None
    if clip.weights_sha256 != clip_cfg["weights_sha256"]:
        raise UserError(where, f"the weights of {clip_cfg['model']} ({clip_cfg['weights']}) differ from those the "
                               "stored features were made with")
    frames = settings["frames"]
    kinds: tuple[str, ...] = ("rgb",)
    flow = None
    wheel = None
    if flow_attrs is not None:
        f = flow_attrs["settings"]["flow"]
        if flow_attrs["settings"]["clip"]["weights_sha256"] != clip_cfg["weights_sha256"]:
            raise UserError(where, "the rgb and flow stores were made with different CLIP weights")
        raft_weights, raft_seed = _spec_source(f.get("weights", ""))
        extra = f.get("settings", {})
        try:
            flow = load_flow(FlowSpec(
                method=f["method"], max_side=f["max_side"], raft_weights=raft_weights or None, seed=raft_seed,
                num_flow_updates=int(f.get("num_flow_updates", 12)), autocast=f.get("autocast", "bf16"),
                dis_preset=extra.get("preset", "medium"),
                farneback={k: v for k, v in extra.items() if k != "preset"} if f["method"] == "farneback" else {},
                device=device,
            ))
        except EncoderConfigError as err:
            raise UserError(where, f"cannot rebuild the flow method: {err}") from None
        if "weights_sha256" in f and flow.weights_sha256 != f["weights_sha256"]:
            raise UserError(where, f"the {f['method']} weights differ from those the stored flow features used")
        kinds, wheel = ("rgb", "flow"), f.get("wheel_max_magnitude")
    return Extractors(clip=clip, kinds=kinds, flow=flow, sample_fps=frames["sample_fps"],
                      min_frames=int(frames["min_frames"]), wheel_max_magnitude=wheel)


def store_attrs(kind: str, ex: Extractors, T: int) -> dict[str, Any]:
    """Root attributes of a frame-feature store; `settings` is what decides whether stored features are stale."""
    clip = ex.clip.describe()
    settings: dict[str, Any] = {
        "kind": kind,
        "clip": clip,
        "frames": {"sample_fps": ex.sample_fps, "min_frames": ex.min_frames},
    }
    attrs: dict[str, Any] = {
        "kind": kind,
        "encoder": f"{clip['model']} ({clip['weights']})",
        "encoder_model": clip["model"],
        "encoder_weights": clip["weights"],
        "weights_sha256": clip["weights_sha256"],
        "precision": clip["precision"],
        "sample_fps": ex.sample_fps,
        "dim": clip["dim"],
        "T": T,
    }
    if kind == "flow":
        settings["flow"] = describe_flow(ex.flow, ex.wheel_max_magnitude)
        attrs["flow_method"] = settings["flow"]["method"]
        attrs["flow"] = settings["flow"]
        attrs["flow_timestamps"] = "later frame of each pair"
    attrs["settings"] = settings
    attrs["settings_sha256"] = settings_sha256(settings)
    return attrs
