"""`grizal check`: before any work, what the configured run lacks and what it will cost, one line each.

Videos found or missing, encoder weights present or to download, the API keys the prior backends need (named,
never printed), the priors' estimated cost (the generate dry run's own pricing), disk space for the feature
stores and a rough time on this machine. Exit 0 when the run can start, 2 when something is missing.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from pipeline.common import UserError, exit_on_user_error, load_params, read_json
from pipeline.data import demo_vocab
from pipeline.data.build import annotated_classes, build_index
from pipeline.data.index import locate_video
from pipeline.params_schema import validate_section

DEMO_CHECKPOINT = "cache/pretrain/clip.pt"
KEY_VARIABLE = "OPENAI_API_KEY"
EXIT_MISSING = 2


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'ok     ' if self.ok else 'MISSING'} {self.text}"


@dataclass(frozen=True)
class Workload:
    videos: int
    seconds: float  # total video duration


def check_videos(prepare: dict, demo: dict, where: str) -> tuple[Finding, Workload]:
    if prepare["dataset"] == "demo" and not Path(prepare.get("video_dir") or "").is_dir():
        n = len(demo_vocab.all_classes()) * (demo["videos_per_class_train"] + demo["videos_per_class_test"])
        seconds = n * (demo["min_duration"] + demo["max_duration"]) / 2
        return Finding(True, f"videos: the demo world's {n}, made by the demo_world stage"), Workload(n, seconds)
    try:
        index = build_index(prepare, where, videos=False)
    except UserError as err:  # the annotations are missing or broken: say so and go on with the other checks
        return Finding(False, f"annotations: {err} (prepare.annotations; the data set's page says where they come "
                              "from)"), Workload(0, 0.0)
    video_dir = prepare.get("video_dir")
    seconds = sum(video.duration or 0.0 for video in index.videos.values())
    workload = Workload(len(index.videos), seconds)
    if not video_dir:
        return Finding(True, f"videos: {len(index.videos)} listed, no prepare.video_dir (features imported)"), workload
    if not Path(video_dir).is_dir():
        return Finding(False, f"videos: folder {video_dir} not found (prepare.video_dir); "
                              f"{len(index.videos)} videos listed in {prepare.get('annotations')}"), workload
    missing = [vid for vid in sorted(index.videos) if locate_video(video_dir, vid)[0] is None]
    found = len(index.videos) - len(missing)
    if missing:
        return Finding(False, f"videos: {found} of {len(index.videos)} found in {video_dir}; {len(missing)} missing, "
                              f"first: {Path(video_dir) / missing[0]}"), workload
    return Finding(True, f"videos: {found} of {len(index.videos)} found in {video_dir}"), workload


def _cached_tag_file(model: str, tag: str) -> str | None:
    """The local file of open_clip weights ``model``/``tag`` if a previous download left one, else None."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return cfg["file"]
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo_id = "/".join(cfg["hf_hub"].rstrip("/").split("/")[:2])
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo_id, filename)
            if isinstance(found, str):
                return found
    if cfg.get("url"):
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        if local.is_file():
            return str(local)
    return None


def check_weights(clip: dict, dataset: str) -> Finding:
    import open_clip

    model, pretrained = clip["model"], clip.get("pretrained")
    if not pretrained:
        return Finding(True, f"weights: {model}, seeded random init (extract.clip.pretrained is null)")
    if pretrained in open_clip.list_pretrained_tags_by_model(model):
        local = _cached_tag_file(model, pretrained)
        if local:
            return Finding(True, f"weights: {model}/{pretrained} in the local cache ({local})")
        return Finding(False, f"weights: {model}/{pretrained} is not in the local cache and needs a download; "
                              f"nothing is downloaded offline: set extract.clip.pretrained: /path/to/file.pt "
                              f"(a local checkpoint of these weights)")
    if os.path.isfile(pretrained):
        return Finding(True, f"weights: {model} from {pretrained}")
    if os.path.normpath(pretrained) == os.path.normpath(DEMO_CHECKPOINT) and dataset == "demo":
        return Finding(True, f"weights: {pretrained} not there yet; the pretrain stage makes it "
                             f"(prepare.dataset is demo)")
    return Finding(False, f"weights: checkpoint file {pretrained} not found (extract.clip.pretrained); set a "
                          f"local checkpoint file, or a tag such as openai with its weights in the local cache")


def _prior_classes(generate_cfg, params: dict, where: str) -> list[str]:
    index = generate_cfg.index
    if index.is_file() and read_json(index).get("dataset") == params["prepare"]["dataset"]:
        return sorted(read_json(index)["classes"])
    return annotated_classes(params["prepare"], where)


def check_priors(params: dict, where: str) -> list[Finding]:
    """The API keys the backends need and the priors' estimated cost, from the generate dry run's own plan."""
    from pipeline.priors.backends import make_image_backend, make_text_backend
    from pipeline.priors.cache import PriorCache
    from pipeline.priors.config import build_config
    from pipeline.priors.report import dry_run_table, money
    from pipeline.priors.runner import PriorRunner

    cfg = build_config(validate_section(params, "generate", where, fill_defaults=False), where, {})
    try:
        names = _prior_classes(cfg, params, where)
    except UserError as err:  # the classes come from the annotations, which the videos check names already
        return [Finding(False, f"priors: not priced, the classes are unknown ({err})")]
    text, image = make_text_backend(cfg), make_image_backend(cfg)
    plan = PriorRunner(cfg, text, image, PriorCache(cfg.out, cfg.store or cfg.out.parent / "prior_items")).plan(names)
    _, totals = dry_run_table(plan, cfg.k, lambda p: text.estimate(p.messages, cfg.k), image.estimate())
    calls = {"texts": totals["text_calls"], "images": totals["image_calls"]}
    findings = [Finding(True, f"priors: {len(names)} classes, k={cfg.k}: {calls['texts']} text and "
                              f"{calls['images']} image calls to make (texts from {text.name}, images from "
                              f"{image.name}), est. cost {money(totals['cost'].cost_usd)}")]
    remote = [f"{b.name} {kind}" for kind, b in (("text", text), ("image", image)) if b.remote and calls[kind + "s"]]
    if remote:
        have = bool(os.environ.get(KEY_VARIABLE))
        findings.append(Finding(have, f"API key: {KEY_VARIABLE} {'is set' if have else 'is not set'} "
                                      f"(needed by the {' and '.join(remote)} backend{'s' * (len(remote) > 1)})"))
    return findings


def _clip_numbers(model: str) -> tuple[int, float]:
    """(embedding width, forward GFLOPs per frame of the image tower), counted on a weightless (meta) copy."""
    import logging

    import open_clip
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from grizal.encoders.clip import register_offline_configs

    register_offline_configs()
    config = open_clip.get_model_config(model)
    if config is None:
        raise UserError("extract.clip.model", f"unknown open_clip model '{model}'")
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # open_clip logs "no pretrained weights" for the meta copy
    try:
        with torch.device("meta"):
            clip = open_clip.create_model(model, device="meta")
    finally:
        root.setLevel(level)
    side = clip.visual.image_size
    side = side if isinstance(side, int) else side[0]
    with FlopCounterMode(display=False) as counter:
        clip.encode_image(torch.zeros(1, 3, side, side, device="meta"))
    return config["embed_dim"], counter.get_total_flops() / 1e9


def _free_bytes(path: Path) -> int:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def _matmul_gflops() -> float:
    import torch

    side = 1024
    a = torch.randn(side, side)
    a @ a
    start, repeats = time.perf_counter(), 4
    for _ in range(repeats):
        a @ a
    return repeats * 2 * side**3 / max(time.perf_counter() - start, 1e-9) / 1e9


def check_costs(extract: dict, workload: Workload) -> list[Finding]:
    """Disk for the rgb and flow stores (one row per sampled frame) and a rough CLIP time on this machine."""
    import torch

    if workload.videos == 0:
        return [Finding(True, "disk and time: not estimated until the annotations list the videos")]
    dim, gflops = _clip_numbers(extract["clip"]["model"])
    frames = workload.seconds * extract["frames"]["sample_fps"]
    kinds = 2  # rgb and flow: both are CLIP features of dim width
    needed = frames * dim * 4 * kinds
    out = Path(extract["out"]["rgb"])
    free = _free_bytes(out.parent)
    disk = Finding(needed < free, f"disk: about {needed / 1e9:.2f} GB for the rgb and flow stores "
                                  f"({workload.videos} videos, {frames:.0f} frames x {dim} x 4 bytes x {kinds}); "
                                  f"{free / 1e9:.1f} GB free at {out.parent}")
    rate = _matmul_gflops()
    hours = frames * kinds * gflops / rate / 3600
    cpu = torch.backends.cpu.get_cpu_capability()
    time_line = Finding(True, f"time: roughly {hours:.2f} h of CLIP encoding on this CPU ({cpu}, {rate:.0f} GFLOP/s "
                              f"fp32 matmul, {gflops:.2f} GFLOPs per frame; decoding and optical flow not counted, "
                              f"a rough guess)")
    return [disk, time_line]


def preflight(params_path: Path) -> list[Finding]:
    where = str(params_path)
    params = load_params(params_path)
    prepare = validate_section(params, "prepare", where)
    demo = validate_section(params, "demo", where) if prepare["dataset"] == "demo" else {}
    extract = validate_section(params, "extract", where)
    params = {**params, "prepare": prepare}
    videos, workload = check_videos(prepare, demo, where)
    return [videos, check_weights(extract["clip"], prepare["dataset"]), *check_priors(params, where),
            *check_costs(extract, workload)]


@exit_on_user_error
def check_command(
    params: Path = typer.Option(Path("params.yaml"), "--params", help="The params file `dvc repro` would read."),
) -> None:
    """Before any work: what the configured run lacks (videos, weights, API keys) and will cost (priors, disk, time).

    Exit status 0 when the run can start, 2 when something is missing."""
    if not params.is_file():
        raise UserError(params, "params file not found")
    findings = preflight(params)
    for finding in findings:
        typer.echo(finding.line())
    missing = sum(not f.ok for f in findings)
    if missing:
        typer.echo(f"{missing} thing(s) missing: fix them before `dvc repro`")
        raise typer.Exit(EXIT_MISSING)
    typer.echo("ready: `dvc repro` can start")
