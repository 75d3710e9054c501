"""`grizal localize VIDEO --action TEXT [--action TEXT ...]`: zero-shot localization of free-text actions in
one video with a trained checkpoint, through the same code as the stages.

Priors come from ``pipeline.priors.generation`` (the configured backends, offline by default), features from
the extract engine with the frozen encoders rebuilt from the checkpoint's record of them (and checked against
it), model inputs from ``pipeline.features.inputs`` and segments from ``pipeline.modelling.inference``.
Everything reusable is cached under the cache folder, so a second call on the same video (new actions or
not) encodes nothing twice:

    CACHE/priors/                          generate's content-addressed texts and images, and priors.json
    CACHE/encoders-<sha>/{rgb,flow}.zarr   frame features; one group per video, keyed by a hash of the
                                           file's resolved path, size and modification time
    CACHE/encoders-<sha>/priors.zarr       joint prior embeddings of every action asked for so far
    CACHE/thumbnails/<video key>-<n>.npz   the timeline's thumbnails

`<sha>` is a hash of the encoder settings the checkpoint was trained with, so checkpoints made with other
encoders never share features. Outputs: OUT/segments.json (ActivityNet result format), OUT/timeline.png and
OUT/call.json (what was asked). The default OUT is one folder per call, localized/<video>/<first action>-<hash>,
the hash covering the video file, the actions, the checkpoint file and the localization settings: calls that
differ in any of them never overwrite each other, and a repeated call rewrites its own folder.

Before anything heavy loads (torch, the model, an encoder) the video's first frame is decoded, so a missing,
empty or non-video file, or one whose start is corrupt, fails at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from pipeline.apps.checkpoint_info import checkpoint_info
from pipeline.apps.timeline import Thumbnail, video_thumbnails, write_timeline
from pipeline.common import UserError, atomic_write_bytes, atomic_write_json, exit_on_user_error, load_params
from pipeline.features.engine import extract_video
from pipeline.features.extraction import video_attrs
from pipeline.features.priors import PriorEncoder, run_priors
from pipeline.features.settings import CheckpointEncoders, check_configured_encoders, store_attrs
from pipeline.features.store import FeatureStoreWriter, open_store
from pipeline.features.video import VideoError, VideoReader, check_video_file
from pipeline.modelling.checkpoint import load_model
from pipeline.modelling.devices import torch_device
from pipeline.modelling.scoring import write_predictions

if TYPE_CHECKING:  # torch, open_clip and the model load when a video is localized: --help stays fast
    pass

DEFAULT_CHECKPOINT = Path("cache/train/model.pt")
DEFAULT_CACHE = Path("cache/localize")
DEFAULT_OUT = Path("localized")
FRAME_KINDS = ("rgb", "flow")
MAX_ACTION_CHARS = 200  # a sentence; longer text is almost surely a paste error, and CLIP reads 77 tokens
CURVE_LABELS = {"none": "probability", "geometric": "cross-class score"}


# --- inputs -------------------------------------------------------------------------------------------------


def clean_actions(actions: list[str]) -> list[str]:
    from pipeline.priors.classes import dedupe

    if not actions:
        raise UserError("--action", "no action given; e.g. --action \"a dog being bathed\"")
    if any(not a.strip() for a in actions):
        raise UserError("--action", "empty action text; describe the action, e.g. "
                                    "--action \"a dog being bathed\"")
    too_long = [a for a in actions if len(a.strip()) > MAX_ACTION_CHARS]
    if too_long:
        raise UserError("--action", f"an action of {len(too_long[0].strip())} characters; describe it in at most "
                                    f"{MAX_ACTION_CHARS} (it starts {too_long[0].strip()[:40]!r})")
    return dedupe(actions)


def probe_video(video: Path) -> None:
    """Decode the first frame: a missing, empty, corrupt or non-video file fails here, in milliseconds."""
    try:
        check_video_file(video)
    except VideoError as err:
        raise UserError(video, err.reason) from None
    frames = VideoReader(video, sample_fps=None, min_frames=1).frames()
    try:
        next(frames)
    except VideoError as err:
        raise UserError(video, f"cannot decode this video: {err.reason}") from None
    except StopIteration:
        raise UserError(video, "cannot decode this video: no frame") from None
    finally:
        frames.close()


def file_id(path: Path) -> str:
    resolved = path.resolve()
    stat = resolved.stat()
    return f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}"


def video_key(path: Path) -> str:
    """Identifies one version of one file: its resolved path, size and modification time."""
    return hashlib.sha256(file_id(path).encode()).hexdigest()[:20]


def call_folder(video: Path, actions: list[str], checkpoint: Path, loc_cfg: dict[str, Any]) -> Path:
    """localized/<video>/<first action>[+n]-<hash of the video file, actions, checkpoint file and settings>."""
    identity = json.dumps({"video": file_id(video), "actions": actions, "checkpoint": file_id(checkpoint),
                           "localization": loc_cfg}, sort_keys=True, default=str)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    first = re.sub(r"[^A-Za-z0-9]+", "_", actions[0]).strip("_")[:40] or "action"
    more = f"+{len(actions) - 1}" if len(actions) > 1 else ""
    return DEFAULT_OUT / video.stem / f"{first}{more}-{digest}"


@dataclasses.dataclass
class Settings:
    """What one call reads from a params file (all optional) and the command line."""

    params_path: Path | None = None
    generate: dict[str, Any] | None = None
    extract: dict[str, Any] | None = None
    localization: dict[str, Any] | None = None
    text_backend: str | None = None
    image_backend: str | None = None
    device: str | None = None
    cross_class: str = "none"

    @classmethod
    def load(cls, params: Path | None, **options: Any) -> Settings:
        if params is None:
            return cls(**options)
        from pipeline.params_schema import validate_section

        values = load_params(params)
        sections = {}
        for name in ("generate", "extract", "localization"):  # each checked as given, when the file has it
            present = values.get(name) is not None
            sections[name] = validate_section(values, name, params, fill_defaults=False) if present else None
        return cls(params_path=params, **sections, **options)


# --- the pipeline -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Localization:
    video: Path
    name: str
    duration: float
    actions: list[str]
    times: np.ndarray  # (T,) snippet centres, seconds
    probs: np.ndarray  # (C, T) the model's probability of each action, computed for each action alone
    curves: np.ndarray  # (C, T) the curves the segments were cut from (== probs unless --cross-class)
    thresholds: list[float]
    results: list[dict[str, Any]]  # ActivityNet result entries, best first
    features_cached: bool
    segments_path: Path
    timeline_path: Path
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # action -> why it has no answer
    peaks: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # action -> (curve max, time)

    def no_segment(self, action: str) -> str:
        """Why an action got no segment: where its curve peaked against the lowest threshold."""
        peak, at = self.peaks[action]
        lowest = min(self.thresholds)
        if peak < lowest:
            return f"no segment: peak {peak:.3f} at {at:.1f} s, below the lowest threshold {lowest:g}"
        return f"no segment: peak {peak:.3f} at {at:.1f} s (>= {lowest:g}, but no segment survived)"


def _missing_kinds(store_dir: Path, kinds: tuple[str, ...], key: str) -> tuple[str, ...]:
    """The kinds whose store lacks a complete, intact copy of the video."""
    from pipeline.features.inputs import store_paths

    paths = store_paths(store_dir)
    missing = []
    for kind in kinds:
        stored = (paths[kind] / "zarr.json").is_file() and open_store(paths[kind]).load_many([key])[0]
        if not stored or isinstance(stored, str):  # absent, or the reason it cannot be read
            missing.append(kind)
    return tuple(missing)


def ensure_features(video: Path, key: str, store_dir: Path, encoders: CheckpointEncoders,
                    log: Callable) -> bool:
    """Extract the video's features into the cache unless they are there; True when they were."""
    from pipeline.features.inputs import store_paths

    missing = _missing_kinds(store_dir, encoders.kinds, key)
    if not missing:
        log(f"features: cached ({store_dir}, video {key})")
        return True
    started = time.perf_counter()
    ex = dataclasses.replace(encoders.extractors, kinds=missing)
    try:
        result = extract_video(video, ex, key)
    except VideoError as err:
        raise UserError(video, f"cannot decode this video: {err.reason}") from None
    paths = store_paths(store_dir)
    for kind in missing:
        # wait=True: two localize calls sharing the cache take turns instead of failing
        with FeatureStoreWriter(paths[kind], store_attrs(kind, ex, encoders.T), wait=True) as writer:
            try:
                writer.write_video(key, *result.features[kind], video_attrs(result))
            except ValueError as err:
                raise UserError(video, f"bad features: {err}") from None
    frames = len(result.features["rgb"][0]) if "rgb" in result.features else len(result.features["flow"][0])
    log(f"features: extracted {'+'.join(missing)} of {frames} sampled frames in "
        f"{time.perf_counter() - started:.1f} s -> {store_dir}")
    return False


def ensure_priors(actions: list[str], settings: Settings, cache_dir: Path, store_dir: Path, k: int,
                  encoders: CheckpointEncoders, console: Console) -> dict[str, str]:
    """Generate (or reuse) each action's k sentences and images, then encode the new ones into the cache;
    returns the actions whose priors could not be made, with why (the others are still answered)."""
    from pipeline.features.inputs import store_paths
    from pipeline.priors.config import build_config
    from pipeline.priors.generation import run as generate_priors

    where = settings.params_path or "params.yaml"
    overrides = {"out": cache_dir / "priors", "k": k, "text_backend": settings.text_backend,
                 "image_backend": settings.image_backend}
    cfg = build_config(settings.generate, where, overrides)
    code = generate_priors(cfg, actions, console=console, quiet_when_cached=True)
    failed = {} if code == 0 else _failed_priors(cfg.out, actions)
    if code != 0 and (not failed or len(failed) == len(actions)):  # interrupted, or nothing to answer with
        console.print("error: priors for the actions could not be generated; see above")
        raise SystemExit(code)
    records = encoders.records["priors"]
    encoder = PriorEncoder(records["settings"]["clip"], lambda: encoders.prior_clip)
    with redirect_stdout(sys.stderr):  # run_priors reports on stdout; ours is for the segments table
        run_priors(cfg.out / "priors.json", store_paths(store_dir)["priors"], encoder,
                   records["settings"]["name_template"],
                   joint_unit=records["settings"].get("joint_unit", "concat"), keep_other_classes=True)
    return failed


def _failed_priors(out: Path, actions: list[str]) -> dict[str, str]:
    """The actions missing from priors.json, each with the last reason the manifest gives."""
    from pipeline.common import read_json
    from pipeline.priors.manifest import read_manifest

    complete = read_json(out / "priors.json").get("classes", {})
    reasons = {r.get("class"): f"{r.get('status')}: {r.get('error')}" for r in read_manifest(out / "manifest.jsonl")
               if r.get("status") != "ok"}
    return {a: reasons.get(a, "priors not generated") for a in actions if a not in complete}


def cached_thumbnails(video: Path, key: str, duration: float, n: int, cache_dir: Path, log: Callable
                      ) -> list[Thumbnail]:
    if n < 1:
        return []
    path = cache_dir / "thumbnails" / f"{key}-{n}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return [(float(t), image) for t, image in zip(saved["times"], saved["images"], strict=True)]
    try:
        thumbs = video_thumbnails(video, duration, n)
    except VideoError as err:
        log(f"warning: {video}: no thumbnails ({err.reason})")
        return []
    if thumbs:
        buffer = io.BytesIO()
        np.savez(buffer, times=np.array([t for t, _ in thumbs]), images=np.stack([i for _, i in thumbs]))
        atomic_write_bytes(path, buffer.getvalue())
    return thumbs


def localize(video: Path, actions: list[str], checkpoint: Path = DEFAULT_CHECKPOINT, out: Path | None = None,
             cache_dir: Path = DEFAULT_CACHE, settings: Settings | None = None, top: int = 5,
             n_thumbnails: int = 6, console: Console | None = None) -> Localization:
    """Localize each action in the video; writes OUT/segments.json and OUT/timeline.png."""
    from pipeline.features.inputs import FeatureSet, standardized
    from pipeline.modelling.inference import curves_to_results, model_probs

    settings = settings or Settings()
    console = console or Console(stderr=True)
    log = console.print

    def say(line: str) -> None:  # one unwrapped line, whatever the terminal width and the text's brackets
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    actions = clean_actions(actions)
    probe_video(video)
    loc_cfg = localize_config(settings, say, len(actions))
    device = settings.device or str((settings.extract or {}).get("device", "auto"))
    run_on = torch_device(device, "--device" if settings.device else settings.params_path)
    model, state = load_model(checkpoint, run_on)
    lacking = [k for k in ("encoders", "T", "model_config") if k not in state]
    if lacking:
        raise UserError(checkpoint, f"not a model of the train stage (no {lacking[0]!r}); use its model.pt")
    info = checkpoint_info(state)
    say(info.line(checkpoint))
    warning = info.mismatch_warning(video)
    if warning:
        say(warning)
    use_flow = bool(state["model_config"].get("use_flow", True))
    encoders = CheckpointEncoders(state["encoders"], use_flow, int(state["T"]), device, checkpoint)
    if settings.extract is not None:
        check_configured_encoders(checkpoint, state["encoders"], use_flow, settings.extract,
                                  settings.params_path)

    # Features before priors: a bad video fails before any (possibly paid) generation.
    key = video_key(video)
    store_dir = cache_dir / f"encoders-{encoders.cache_key}"
    cached = ensure_features(video, key, store_dir, encoders, log)
    feature_set = FeatureSet.open(store_dir)
    video_info = feature_set.store("rgb").load_many([key])[0]
    duration = float(video_info[0]["duration"])  # type: ignore[index]
    failed = ensure_priors(actions, settings, cache_dir, store_dir, int(state["model_config"].get("k", 4)),
                           encoders, console)
    for action, reason in failed.items():
        log(f"warning: no priors for {action!r} ({reason}); answering the other actions")
    asked, actions = actions, [a for a in actions if a not in failed]

    videos = feature_set.videos([key], {key: duration}, encoders.T, use_flow)
    stats = state.get("feature_stats") or {}
    # Each action alone (its own priors batch and padding): no other action asked can change its curve.
    probs = np.concatenate([model_probs(model, *standardized(videos, feature_set.priors([action]), stats), run_on)
                            for action in actions], axis=1)
    curves = localized_curves(probs[0], loc_cfg["cross_class"])
    results = curves_to_results(curves[None], videos, actions, {**loc_cfg, "cross_class": "none"})[key]
    peak_at = curves.argmax(axis=1)
    peaks = {a: (float(curves[c, peak_at[c]]), float(videos.times[0][peak_at[c]])) for c, a in enumerate(actions)}

    out = out if out is not None else call_folder(video, asked, checkpoint, loc_cfg)
    segments_path, timeline_path = out / "segments.json", out / "timeline.png"
    write_predictions(segments_path, {video.stem: results})
    atomic_write_json(out / "call.json", {"video": str(video), "actions": asked, "checkpoint": str(checkpoint),
                                          "localization": loc_cfg, "peaks": peaks})
    thumbs = cached_thumbnails(video, key, duration, n_thumbnails, cache_dir, log)
    shown = {a: [(r["segment"][0], r["segment"][1], r["score"]) for r in results if r["label"] == a][:top]
             for a in actions}
    write_timeline(timeline_path, f"{video.name} ({duration:.1f} s)", duration, videos.times[0],
                   dict(zip(actions, curves, strict=True)), shown, thumbs, thresholds=loc_cfg["thresholds"],
                   ylabel=CURVE_LABELS[loc_cfg["cross_class"]])
    if failed:
        atomic_write_json(out / "failed.json", {"asked": asked, "failed": failed})
    elif (out / "failed.json").is_file():
        (out / "failed.json").unlink()
    return Localization(video, video.stem, duration, actions, videos.times[0], probs[0], curves,
                        loc_cfg["thresholds"], results, cached, segments_path, timeline_path, failed, peaks)


def localize_config(settings: Settings, say: Callable, n_actions: int) -> dict[str, Any]:
    """The localization section, with cross_class taken from --cross-class only: an action's segments must
    not depend on which other actions one call asks about unless the user says so (said in one line, and only
    when params set it and several actions are asked, the only case where it would have changed anything)."""
    from grizal.localization import localization_config
    from grizal.model import ConfigError

    section = dict(settings.localization or {})
    ignored = section.pop("cross_class", "none")
    try:
        config = localization_config({**section, "cross_class": settings.cross_class})
    except ConfigError as err:
        where = "--cross-class" if "cross_class" in str(err) else settings.params_path or "localization"
        raise UserError(where, str(err)) from None
    if ignored != "none" and settings.cross_class == "none" and n_actions > 1:
        say(f"note: localization.cross_class: {ignored} in {settings.params_path} is not applied here; "
            f"--cross-class {ignored} makes the actions asked compete")
    return config


def localized_curves(probs: np.ndarray, cross_class: str) -> np.ndarray:
    """(C, T) probabilities -> the curves segments are cut from and the timeline plots."""
    from grizal.localization import cross_class_curves

    return cross_class_curves(probs, cross_class)


def segments_table(result: Localization, top: int) -> Table:
    table = Table(title=f"{result.video.name} ({result.duration:.1f} s)", title_justify="left")
    table.add_column("action")
    table.add_column("start (s)", justify="right")
    table.add_column("end (s)", justify="right")
    table.add_column("score", justify="right")
    for action in result.actions:
        found = [r for r in result.results if r["label"] == action]
        if not found:
            table.add_row(action, "-", "-", result.no_segment(action))
        for i, r in enumerate(found[:top]):
            table.add_row(action if i == 0 else "", f"{r['segment'][0]:.2f}", f"{r['segment'][1]:.2f}",
                          f"{r['score']:.3f}")
        if len(found) > top:
            table.add_row("", "", "", f"+{len(found) - top} in segments.json", style="dim")
        table.add_section()
    for action, reason in result.failed.items():
        table.add_row(action, "-", "-", f"failed: {reason}", style="red")
    return table


# --- command line -------------------------------------------------------------------------------------------


def _params_path(params: Path | None, no_params: bool) -> Path | None:
    if no_params:
        if params is not None:
            raise UserError("--no-params", "cannot be combined with --params")
        return None
    if params is not None:
        return params
    return Path("params.yaml") if Path("params.yaml").is_file() else None


@exit_on_user_error
def localize_command(
    video: Path = typer.Argument(..., help="The video file (anything FFmpeg decodes).", show_default=False),
    action: list[str] = typer.Option(..., "--action", "-a", show_default=False,
                                     help="The action to find, in words; repeat for several actions."),
    checkpoint: Path = typer.Option(DEFAULT_CHECKPOINT, "--checkpoint", help="model.pt of the train stage."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: one per call, "
                                                  "localized/<video name>/<first action>-<hash>)."),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir", help="Cached priors, features, thumbnails."),
    params: Path = typer.Option(None, "--params", help="Read sections generate, extract and localization "
                                                       "(default: ./params.yaml when there is one)."),
    no_params: bool = typer.Option(False, "--no-params", help="Ignore ./params.yaml: built-in defaults and "
                                                              "the checkpoint's own encoders."),
    text_backend: str = typer.Option(None, "--text-backend", help="Override generate.text_backend."),
    image_backend: str = typer.Option(None, "--image-backend", help="Override generate.image_backend."),
    device: str = typer.Option(None, "--device",
                               help="auto, cpu, cuda or cuda:N (default: extract.device, else auto)."),
    top: int = typer.Option(5, "--top", min=1, help="Segments per action in the table and the figure."),
    thumbnails: int = typer.Option(6, "--thumbnails", min=0, help="Thumbnails along the timeline (0: none)."),
    cross_class: str = typer.Option("none", "--cross-class",
                                    help="none: each action is localized on its own; geometric: the actions "
                                         "asked compete at each snippet, so each one's segments depend on the "
                                         "others (localization.cross_class in params is not used here)."),
) -> None:
    """Find when each --action happens in VIDEO: prints the segments; writes segments.json, timeline.png."""
    settings = Settings.load(_params_path(params, no_params), text_backend=text_backend,
                             image_backend=image_backend, device=device, cross_class=cross_class)
    result = localize(video, action, checkpoint, out, cache_dir, settings, top, thumbnails)
    Console().print(segments_table(result, top))
    Console(stderr=True).print(f"wrote {result.segments_path} and {result.timeline_path}")
    if result.failed:
        Console(stderr=True).print(f"{len(result.failed)} action(s) not answered; reasons in "
                                   f"{result.segments_path.parent / 'failed.json'}")
        raise SystemExit(1)


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="grizal: generative prior-guided zero-shot temporal action localization.")
app.command("localize")(localize_command)


def _print_version(value: bool) -> None:
    if value:
        from pipeline.apps.cli import package_version

        typer.echo(f"grizal {package_version()}")
        raise typer.Exit()


@app.callback()
def _group(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print grizal's version and exit."),
) -> None:
    """grizal: generative prior-guided zero-shot temporal action localization."""
