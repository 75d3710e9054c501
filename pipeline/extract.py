"""Stage: frozen features into Zarr stores (rgb frames, optical flow, joint priors), resumable and shardable.

    python -m pipeline.extract rgb --params params.yaml [--shard i/n|auto]
    python -m pipeline.extract flow --params params.yaml [--shard i/n|auto]
    python -m pipeline.extract priors --params params.yaml
    python -m pipeline.extract check STORE [--index cache/prepare/index.json]
    python -m pipeline.extract import --format npy|hdf5 SRC --out STORE --kind rgb ...
    python -m pipeline.extract --videos DIR --out DIR [--flow] [--params params.yaml]   (anyone's videos)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from pipeline.common import UserError, exit_on_user_error, load_params, read_json
from pipeline.features.extraction import find_videos, index_costs, index_videos, report_failure, run_feature_extraction
from pipeline.features.importers import import_command
from pipeline.features.priors import PriorEncoder, run_priors
from pipeline.features.settings import build_clip, build_extractors, extract_config
from pipeline.features.store import PRIORS_KIND, Shard, check_feature_store, check_priors_store
from pipeline.params_schema import validate_section

app = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__.split("\n")[0])


def _stage_params(params_path: Path) -> dict[str, Any]:
    """The stages' door: their `extract` section, checked (the standalone CLI has defaults)."""
    params = load_params(params_path)
    checked = validate_section(params, "extract", params_path, fill_defaults=False)
    return extract_config({"extract": checked}, str(params_path))


def launcher_device(device: str, shard: str | None) -> str:
    """Under torchrun with --shard auto, one GPU per process: cuda:LOCAL_RANK when the device is auto or cuda
    (auto stays auto on a machine without CUDA)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if (shard or "").strip() != "auto" or local_rank is None or device not in ("auto", "cuda"):
        return device
    if not local_rank.isdigit():
        raise UserError("--shard auto", f"torchrun: LOCAL_RANK must be a non-negative integer, got '{local_rank}'")
    import torch

    if device == "auto" and not torch.cuda.is_available():
        return device
    return f"cuda:{int(local_rank)}"


def _stage_features(kind: str, params_path: Path, shard: str | None) -> None:
    cfg = _stage_params(params_path)
    parsed = Shard.parse(shard)
    cfg["device"] = launcher_device(str(cfg["device"]), shard)
    index_path = Path(cfg["index"])
    videos = index_videos(index_path)
    store = Path(cfg["out"][kind])
    if not videos:
        raise UserError(index_path, "no video has a file path; imported features need no extract stage "
                                    "(`python -m pipeline.extract check` verifies them)")
    ex = build_extractors(cfg, (kind,), str(params_path))
    shard_of = parsed.weighted(index_costs(index_path))
    run_feature_extraction(videos, {kind: store}, ex, int(cfg["T"]), shard=shard_of, rebuild=True,
                           max_failure_fraction=float(cfg["max_failure_fraction"]))


PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="params file with an `extract` section")
SHARD_OPTION = typer.Option(None, "--shard", help="i/n: extract only this deterministic share of the videos; "
                                                   "auto: the share of this Slurm array task or torchrun rank")


@app.command("rgb")
@exit_on_user_error
def rgb_command(params: Path = PARAMS_OPTION, shard: str = SHARD_OPTION) -> None:
    """CLIP features of the sampled frames of every indexed video -> extract.out.rgb."""
    _stage_features("rgb", params, shard)


@app.command("flow")
@exit_on_user_error
def flow_command(params: Path = PARAMS_OPTION, shard: str = SHARD_OPTION) -> None:
    """CLIP features of colour-coded optical flow between sampled frames -> extract.out.flow."""
    _stage_features("flow", params, shard)


@app.command("priors")
@exit_on_user_error
def priors_command(params: Path = PARAMS_OPTION) -> None:
    """Joint prior embeddings of every class in priors.json -> extract.out.priors."""
    cfg = _stage_params(params)
    template = str(cfg["priors"]["name_template"])
    clip = build_clip(cfg, str(params))
    run_priors(Path(cfg["priors_json"]), Path(cfg["out"]["priors"]), PriorEncoder.of(clip), template,
               joint_unit=str(cfg["priors"]["joint_unit"]))


@app.command("check")
@exit_on_user_error
def check_command(
    store: Path = typer.Argument(..., help="a .zarr store, or a folder of them"),
    index: Path = typer.Option(None, "--index", help="expect every video of this index (default: the last run's)"),
    max_failure_fraction: float = typer.Option(0.05, "--max-failure-fraction"),
) -> None:
    """Verify stores: every expected video complete and well-formed, or listed in a failures manifest."""
    stores = [store] if (store / "zarr.json").is_file() else sorted(store.glob("*.zarr"))
    if not stores:
        raise UserError(store, "not a store and holds no *.zarr stores")
    expected = None
    if index is not None:
        data = read_json(index)
        videos = data.get("videos") if isinstance(data, dict) else None
        if not isinstance(videos, dict):
            raise UserError(index, "expected an object with a 'videos' mapping")
        expected = sorted(videos)
    bad = []
    for path in stores:
        kind = read_json(path / "zarr.json").get("attributes", {}).get("kind")
        report = check_priors_store(path) if kind == PRIORS_KIND else check_feature_store(path, expected)
        print(report.summary())
        for video_id, reason in list(report.failed.items())[:10]:
            print(f"  failed  {video_id}: {reason}")
        for video_id in report.missing[:10]:
            print(f"  missing {video_id}")
        for video_id, problem in list(report.invalid.items())[:10]:
            print(f"  invalid {video_id}: {problem}")
        if not report.ok(max_failure_fraction):
            bad.append(report_failure(report, max_failure_fraction))
    if bad:
        raise SystemExit("\n".join(bad))


def run_standalone(videos_dir: Path, out: Path, flow: bool, params: Path | None, model: str | None,
                   pretrained: str | None, sample_fps: float | None, flow_method: str | None, device: str | None,
                   shard: str | None, rebuild: bool) -> None:
    overrides: dict[str, Any] = {}
    if params is not None:
        overrides = extract_config({"extract": validate_section(load_params(params), "extract", params)}, str(params))
    if model is not None and pretrained is None:
        raise UserError("--model", "also give --pretrained: a tag (e.g. openai), a checkpoint file, or 'none' "
                                   "for random weights")
    if model is not None:
        overrides.setdefault("clip", {})["model"] = model
    if pretrained is not None:
        random_init = pretrained.lower() in ("none", "random")
        overrides.setdefault("clip", {})["pretrained"] = None if random_init else pretrained
    if sample_fps is not None:
        overrides.setdefault("frames", {})["sample_fps"] = sample_fps
    if flow_method is not None:
        overrides.setdefault("flow", {})["method"] = flow_method
    if device is not None:
        overrides["device"] = device
    parsed = Shard.parse(shard)
    overrides["device"] = launcher_device(str(overrides.get("device", "auto")), shard)
    where = str(params) if params else "command line"
    # The file's section is checked above; what fails here came from an option.
    cfg = extract_config({"extract": validate_section({"extract": overrides}, "extract", "command line")}, where)
    kinds = ("rgb", "flow") if flow else ("rgb",)
    videos = find_videos(videos_dir)
    if (out / "zarr.json").is_file():
        raise UserError(out, "--out is a folder that receives rgb.zarr (and flow.zarr), not a store itself")
    ex = build_extractors(cfg, kinds, where)
    stores = {kind: out / f"{kind}.zarr" for kind in kinds}
    run_feature_extraction(videos, stores, ex, int(cfg["T"]), shard=parsed, rebuild=rebuild,
                           max_failure_fraction=float(cfg["max_failure_fraction"]))


VIDEOS_OPTION = typer.Option(None, "--videos", help="a folder of videos (searched recursively) or one video")
OUT_OPTION = typer.Option(None, "--out", help="output folder: receives rgb.zarr (and flow.zarr)")
FLOW_OPTION = typer.Option(False, "--flow/--no-flow", help="also extract optical-flow features")
STANDALONE_PARAMS = typer.Option(None, "--params", help="params file whose `extract` section to use")
MODEL_OPTION = typer.Option(None, "--model", help="open_clip model name, e.g. ViT-B-32-quickgelu")
PRETRAINED_OPTION = typer.Option(None, "--pretrained", help="tag (e.g. openai), checkpoint file, or none (random)")
FPS_OPTION = typer.Option(None, "--sample-fps", help="frames sampled per second")
FLOW_METHOD_OPTION = typer.Option(None, "--flow-method", help="farneback, dis, raft_small or raft_large")
DEVICE_OPTION = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N")
REBUILD_OPTION = typer.Option(False, "--rebuild", help="replace stores that were made with other settings")


@app.command("videos")
@exit_on_user_error
def videos_command(
    videos: Path = VIDEOS_OPTION, out: Path = OUT_OPTION, flow: bool = FLOW_OPTION,
    params: Path = STANDALONE_PARAMS, model: str = MODEL_OPTION, pretrained: str = PRETRAINED_OPTION,
    sample_fps: float = FPS_OPTION, flow_method: str = FLOW_METHOD_OPTION, device: str = DEVICE_OPTION,
    shard: str = SHARD_OPTION, rebuild: bool = REBUILD_OPTION,
) -> None:
    """Features of anyone's videos: --videos DIR --out DIR (defaults: ViT-B-32-quickgelu/openai, RAFT)."""
    if videos is None or out is None:
        raise UserError("command line", "--videos DIR and --out DIR are both needed")
    run_standalone(videos, out, flow, params, model, pretrained, sample_fps, flow_method, device, shard, rebuild)


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context, videos: Path = VIDEOS_OPTION, out: Path = OUT_OPTION, flow: bool = FLOW_OPTION,
    params: Path = STANDALONE_PARAMS, model: str = MODEL_OPTION, pretrained: str = PRETRAINED_OPTION,
    sample_fps: float = FPS_OPTION, flow_method: str = FLOW_METHOD_OPTION, device: str = DEVICE_OPTION,
    shard: str = SHARD_OPTION, rebuild: bool = REBUILD_OPTION,
) -> None:
    """Extract frozen features. Without a command: `--videos DIR --out DIR` extracts anyone's videos."""
    if ctx.invoked_subcommand is not None:
        return
    if videos is None and out is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    exit_on_user_error(videos_command)(videos, out, flow, params, model, pretrained, sample_fps, flow_method,
                                       device, shard, rebuild)


app.command("import")(import_command)

if __name__ == "__main__":
    app()
