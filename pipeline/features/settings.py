"""Encoder settings, owned here in all three forms: the `extract` section of params.yaml (``extract_config``),
the attributes recorded in each feature store and checkpoint (``store_attrs``), and the frozen encoders rebuilt
from either (``build_extractors``, ``extractors_from_stores``, ``CheckpointEncoders``); plus the check that a
params file names the encoders a checkpoint was trained with (``check_configured_encoders``); a feature folder
checks itself against a checkpoint (``pipeline.features.inputs.FeatureSet.check_made_by``). Shared by the extract
stage, the standalone CLI and `grizal localize`."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.common import UserError
from pipeline.features.engine import Extractors, describe_flow
from pipeline.features.store import settings_differences, settings_sha256
from pipeline.params_schema import ExtractParams, section_dict, validate_section
from pipeline.precision import announce

if TYPE_CHECKING:  # the encoders (open_clip, torch, OpenCV) load when they are built
    from grizal.encoders.clip import ClipEncoder
    from grizal.encoders.video import VideoEncoder

# The paper's setup for anyone's videos (the `extract` params model's defaults); params.yaml's `extract` section
# overrides any of it.
DEFAULTS: dict[str, Any] = section_dict(ExtractParams(), {})

FRAME_FAMILIES = ("open_clip", "torchvision_video")
# Settings that 'auto' resolves per machine: a configured 'auto' matches whatever a checkpoint's features recorded.
AUTO_RESOLVED = ("clip.precision", "flow.autocast")


def extract_config(params: dict[str, Any] | None, where: str = "params.yaml") -> dict[str, Any]:
    """The `extract` section over the defaults, checked by its params model."""
    return validate_section({"extract": (params or {}).get("extract") or {}}, "extract", where)


def build_clip(cfg: dict[str, Any], where: str) -> ClipEncoder:
    from grizal.encoders.clip import ClipSpec, EncoderConfigError, load_clip

    c = cfg["clip"]
    try:
        clip = load_clip(ClipSpec(model=str(c["model"]), pretrained=c["pretrained"] or None, seed=int(c["seed"]),
                                  precision=str(c["precision"]), device=str(cfg["device"])))
    except EncoderConfigError as err:
        raise UserError(where, f"extract.clip: {err}") from None
    announce("extract.clip.precision", str(c["precision"]), clip.precision, clip.device)
    return clip


def build_frame_encoder(cfg: dict[str, Any], where: str) -> VideoEncoder | None:
    """The torchvision video model `extract.frame_encoder` names; None when the rgb stream uses CLIP."""
    f = cfg["frame_encoder"]
    if f["family"] == "open_clip":
        return None
    from grizal.encoders.clip import EncoderConfigError
    from grizal.encoders.video import VideoSpec, load_video_encoder

    try:
        return load_video_encoder(VideoSpec(
            model=str(f["model"]), weights=f["weights"] or None, seed=int(f["seed"]), window=int(f["window"]),
            stride=int(f["stride"]), crop_size=f["crop_size"], device=str(cfg["device"])))
    except EncoderConfigError as err:
        raise UserError(where, f"extract.frame_encoder: {err}") from None


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
        if spec_is_raft(flow):
            announce("extract.flow.autocast", str(f["autocast"]), flow.autocast, flow.device)
    return Extractors(
        clip=clip, kinds=kinds, flow=flow, sample_fps=cfg["frames"]["sample_fps"],
        min_frames=int(cfg["frames"]["min_frames"]), clip_batch_size=int(cfg["clip"]["batch_size"]),
        flow_batch_size=int(f["batch_size"]), wheel_max_magnitude=f["wheel_max_magnitude"],
        queue_size=int(cfg["queue_size"]), decode_workers=int(cfg["decode_workers"]),
        frame=build_frame_encoder(cfg, where) if "rgb" in kinds else None,
        frame_batch_size=int(cfg["frame_encoder"]["batch_size"]),
    )


def spec_is_raft(flow: Any) -> bool:
    return bool(getattr(flow.spec, "is_raft", False))


def _spec_source(weights: str) -> tuple[str | None, int]:
    """A stored weights description back to (pretrained, seed): 'random-init seed 3' -> (None, 3)."""
    prefix = "random-init seed "
    return (None, int(weights[len(prefix):])) if weights.startswith(prefix) else (weights, 0)


def rebuild_frame_encoder(described: dict[str, Any], device: str, where: str) -> VideoEncoder:
    """A torchvision video frame encoder from its stored description, checked against its weights checksum."""
    from grizal.encoders.clip import EncoderConfigError
    from grizal.encoders.video import VideoSpec, load_video_encoder, preprocessing

    weights, seed = _spec_source(described["weights"])
    crop = described["preprocess"]["crop"]
    try:
        own = preprocessing(described["model"])["crop"]
        frame = load_video_encoder(VideoSpec(
            model=described["model"], weights=weights, seed=seed,
            window=int(described["window"]), stride=int(described["stride"]),
            crop_size=None if crop == own else int(crop), device=device))
    except EncoderConfigError as err:
        raise UserError(where, f"cannot rebuild the frame encoder: {err}") from None
    if frame.weights_sha256 != described["weights_sha256"]:
        raise UserError(where, f"the weights of {described['model']} ({described['weights']}) differ from those the "
                               "stored features were made with")
    return frame


def extractors_from_stores(rgb_attrs: dict[str, Any], flow_attrs: dict[str, Any] | None = None,
                           device: str = "auto", where: str = "feature stores",
                           clip_settings: dict[str, Any] | None = None) -> Extractors:
    """The encoders that made existing stores (e.g. those a checkpoint was trained on), rebuilt and checked
    against the stored weights checksums, so that one new video gets features comparable to the stores'.
    With a torchvision video frame encoder the rgb store records no CLIP: `clip_settings` (the priors
    store's, or the flow store's) names the CLIP to load."""
    from grizal.encoders.clip import ClipSpec, EncoderConfigError, load_clip
    from grizal.encoders.flow import FlowSpec, load_flow

    settings = rgb_attrs.get("settings", {})
    frame = rebuild_frame_encoder(settings["frame_encoder"], device, where) if "frame_encoder" in settings else None
    clip_cfg = settings.get("clip") or ((flow_attrs or {}).get("settings", {}).get("clip") if frame else None) \
        or (clip_settings if frame else None)
    if not clip_cfg:
        raise UserError(where, f"features were {rgb_attrs.get('encoder', 'imported')}: no encoder to rebuild")
    pretrained, seed = _spec_source(clip_cfg["weights"])
    try:
        clip = load_clip(ClipSpec(model=clip_cfg["model"], pretrained=pretrained, seed=seed,
                                  precision=clip_cfg["precision"], device=device))
    except EncoderConfigError as err:
        raise UserError(where, f"cannot rebuild the frame encoder: {err}") from None
    announce("clip precision (as the stored features)", clip_cfg["precision"], clip.precision, clip.device)
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
                      min_frames=int(frames["min_frames"]), wheel_max_magnitude=wheel, frame=frame)


def store_attrs(kind: str, ex: Extractors, T: int) -> dict[str, Any]:
    """Root attributes of a frame-feature store; `settings` is what decides whether stored features are stale."""
    clip = ex.clip.describe()
    settings: dict[str, Any] = {
        "kind": kind,
        "clip": clip,
        "frames": {"sample_fps": ex.sample_fps, "min_frames": ex.min_frames},
    }
    if kind == "rgb" and ex.frame is not None:  # the rgb features do not depend on CLIP then
        clip = ex.frame.describe()
        settings = {"kind": kind, "frame_encoder": clip, "frames": settings["frames"]}
    attrs: dict[str, Any] = {
        "kind": kind,
        "encoder": f"{clip['model']} ({clip['weights']})",
        "encoder_model": clip["model"],
        "encoder_weights": clip["weights"],
        "weights_sha256": clip["weights_sha256"],
        "precision": clip["precision"],
        # the config said 'auto': a store made where auto resolved otherwise is refused, not mixed or replaced
        "precision_auto": ex.clip.spec.precision == "auto" and (kind != "flow" or ex.flow is None
                                                                or getattr(ex.flow.spec, "autocast", "") == "auto"),
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


def trained_settings(records: dict[str, dict[str, Any]], use_flow: bool) -> dict[str, Any]:
    """The encoder settings a checkpoint's features were made with (its stores' attributes), named like the
    `extract` keys."""
    rgb = records["rgb"]["settings"]
    clip = rgb.get("clip") or records["priors"]["settings"]["clip"]
    frame = rgb.get("frame_encoder")
    flat = {"frame_encoder.family": frame["family"] if frame else "open_clip"}
    if frame:
        flat |= {f"frame_encoder.{key}": frame[key] for key in ("model", "weights", "window", "stride")}
    flat |= {"clip.model": clip["model"], "clip.pretrained": clip["weights"],
            "clip.precision": clip["precision"], "frames.sample_fps": rgb["frames"]["sample_fps"],
            "frames.min_frames": rgb["frames"]["min_frames"],
            "priors.name_template": records["priors"]["settings"]["name_template"],
            "priors.joint_unit": records["priors"]["settings"].get("joint_unit", "concat")}
    if use_flow:
        flow = records["flow"]["settings"]["flow"]
        flat |= {"flow.method": flow["method"], "flow.max_side": flow["max_side"],
                 "flow.wheel_max_magnitude": flow.get("wheel_max_magnitude")}
        if flow["method"] == "farneback":
            flat["flow.farneback"] = flow["settings"]
        elif flow["method"] == "dis":
            flat["flow.dis_preset"] = flow["settings"]["preset"]
        else:
            flat |= {"flow.raft_weights": flow["weights"], "flow.num_flow_updates": flow["num_flow_updates"],
                     "flow.autocast": flow["autocast"]}
    return flat


def configured_settings(cfg: dict[str, Any], use_flow: bool) -> dict[str, Any]:
    """What an `extract` section (over the defaults, as the extract stage reads it) configures, in the same
    terms as `trained_settings`; nothing is loaded."""
    clip, frames, flow = cfg["clip"], cfg["frames"], cfg["flow"]
    model = str(clip["model"])
    hub = model.startswith(("hf-hub:", "local-dir:"))  # open_clip names the weights by the model there
    weights = model if hub else (clip["pretrained"] or f"random-init seed {int(clip['seed'])}")
    f = cfg["frame_encoder"]
    flat = {"frame_encoder.family": f["family"]}
    if f["family"] != "open_clip":
        flat |= {"frame_encoder.model": f["model"], "frame_encoder.weights": _frame_weights(f),
                 "frame_encoder.window": int(f["window"]), "frame_encoder.stride": int(f["stride"])}
    flat |= {"clip.model": model, "clip.pretrained": weights, "clip.precision": clip["precision"],
            "frames.sample_fps": frames["sample_fps"], "frames.min_frames": int(frames["min_frames"]),
            "priors.name_template": cfg["priors"]["name_template"],
            "priors.joint_unit": cfg["priors"]["joint_unit"]}
    if use_flow:
        method = flow["method"]
        flat |= {"flow.method": method, "flow.max_side": flow["max_side"],
                 "flow.wheel_max_magnitude": flow["wheel_max_magnitude"]}
        if method == "farneback":
            from grizal.encoders.flow_defaults import FARNEBACK_DEFAULTS

            flat["flow.farneback"] = {**FARNEBACK_DEFAULTS, **(flow["farneback"] or {})}
        elif method == "dis":
            flat["flow.dis_preset"] = flow["dis_preset"]
        else:
            flat |= {"flow.raft_weights": flow["raft_weights"] or f"random-init seed {int(flow['seed'])}",
                     "flow.num_flow_updates": int(flow["num_flow_updates"]),
                     "flow.autocast": flow["autocast"]}
    return flat


def _frame_weights(f: dict[str, Any]) -> str:
    """How a video encoder records the weights `extract.frame_encoder.weights` names (nothing is loaded)."""
    weights = f["weights"]
    if not weights:
        return f"random-init seed {int(f['seed'])}"
    if weights == "DEFAULT" and not os.path.isfile(weights):
        from grizal.encoders.video import default_weights_name

        return default_weights_name(str(f["model"]))
    return str(weights)


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    # A checkpoint file named by another (relative) path is still the same weights.
    return isinstance(a, str) and isinstance(b, str) and os.path.isfile(a) and os.path.isfile(b) \
        and os.path.samefile(a, b)


def check_configured_encoders(checkpoint: Path, records: dict[str, dict[str, Any]], use_flow: bool,
                              extract_section: dict[str, Any], params_path: Path) -> None:
    """A params file whose `extract` section names other encoders than the checkpoint was trained with is an
    error that says which settings differ."""
    cfg = extract_config({"extract": extract_section}, str(params_path))
    trained, configured = trained_settings(records, use_flow), configured_settings(cfg, use_flow)
    differ = [key for key in trained if key in configured and not _same(trained[key], configured[key])
              and not (key in AUTO_RESOLVED and configured[key] == "auto")]
    if differ:
        details = "; ".join(f"extract.{key}: {configured[key]!r} in {params_path}, {trained[key]!r} in the "
                            "checkpoint" for key in differ)
        raise UserError(checkpoint, f"made with other encoder settings than {params_path} configures "
                                    f"({details}); retrain with these settings, pass the matching --params, "
                                    "or --no-params to use the checkpoint's own encoders")


class CheckpointEncoders:
    """The frozen encoders that made a checkpoint's training features, rebuilt on first use only (a fully
    cached call loads none) and checked to describe themselves exactly as the checkpoint records."""

    def __init__(self, records: dict[str, dict[str, Any]], use_flow: bool, T: int, device: str, where: Path):
        self.records, self.use_flow, self.T, self.device, self.where = records, use_flow, T, device, where
        self.kinds = ("rgb", "flow") if use_flow else ("rgb",)
        lacking = [kind for kind in (*self.kinds, "priors") if "settings" not in records.get(kind, {})]
        if lacking:
            raise UserError(where, f"records no {lacking[0]} encoder settings; retrain it with this grizal")
        rgb = records["rgb"]["settings"]
        if not (rgb.get("clip") or rgb.get("frame_encoder")):
            encoder = records["rgb"].get("encoder", "unknown encoder")
            raise UserError(where, f"trained on imported features ({encoder}): grizal localize cannot make "
                                   "features of a new video with that encoder")

    @property
    def cache_key(self) -> str:
        shas = [self.records[kind]["settings_sha256"] for kind in (*self.kinds, "priors")]
        return hashlib.sha256(json.dumps(shas).encode()).hexdigest()[:16]

    def _check(self, kind: str, rebuilt: dict[str, Any]) -> None:
        changes = settings_differences(self.records[kind]["settings"], rebuilt)
        if changes:
            raise UserError(self.where, f"cannot rebuild the {kind} encoder this checkpoint was trained with "
                                        f"({'; '.join(changes[:4])})")

    @functools.cached_property
    def extractors(self) -> Extractors:
        ex = extractors_from_stores(self.records["rgb"], self.records["flow"] if self.use_flow else None,
                                    self.device, str(self.where), self.records["priors"]["settings"]["clip"])
        for kind in self.kinds:
            self._check(kind, store_attrs(kind, ex, self.T)["settings"])
        return ex

    @functools.cached_property
    def prior_clip(self) -> ClipEncoder:
        settings = self.records["priors"]["settings"]
        if "extractors" in self.__dict__ and self.extractors.clip.describe() == settings["clip"]:
            clip = self.extractors.clip
        else:
            frames = self.records["rgb"]["settings"]["frames"]
            clip = extractors_from_stores({"settings": {"clip": settings["clip"], "frames": frames}}, None,
                                          self.device, str(self.where)).clip
        self._check("priors", {**settings, "clip": clip.describe()})
        return clip
