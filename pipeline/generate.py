"""Stage: generative priors. For each action class, k descriptions and k paired images, cached.

    python -m pipeline.generate --classes "skiing,surfing" --text-backend openai --image-backend openai
    python -m pipeline.generate --dataset thumos14 --split-setting 75_25 --split 3 --dry-run
    python -m pipeline.generate --params params.yaml          # the DVC stage: classes from the index

Where it writes: the DVC stage (no class option) writes the pipeline's ``generate.out`` (cache/priors). A run
that names its classes (--classes, --classes-file, --dataset, --index) is ad hoc: it never touches the
pipeline's output and writes ``outputs/priors/<name>`` (or --out). Both make their items in the shared
content-addressed item cache (cache/prior_items, --store), so nothing is paid for twice; an explicit --out
without --store is a self-contained folder (its own texts/ and images/).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.common import UserError, exit_on_user_error, load_params, read_json
from pipeline.params_schema import validate_section
from pipeline.priors import classes as class_sources
from pipeline.priors.config import IMAGE_BACKENDS, TEXT_BACKENDS, GenerateConfig, build_config
from pipeline.priors.generation import run
from pipeline.priors.names import file_slug

ADHOC_ROOT = Path("outputs/priors")
STORE_NAME = "prior_items"  # the shared item cache sits beside the pipeline's output: cache/prior_items

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Generate (or reuse from the cache) k descriptions and k paired images per action class.")


def stage_classes(cfg: GenerateConfig, params_data: dict, params: Path, dry_run: bool) -> list[str]:
    """The DVC stage's classes: the index's, but only an index of the data set that params prepares. A dry run
    without such an index prices the classes of that data set's annotations (a paper config in a fresh clone)."""
    prepare_cfg = params_data.get("prepare")
    if not isinstance(prepare_cfg, dict) or not prepare_cfg.get("dataset"):
        return class_sources.from_index(cfg.index)
    wanted = prepare_cfg["dataset"]
    found = read_json(cfg.index).get("dataset") if cfg.index.is_file() else None
    if found == wanted:
        return class_sources.from_index(cfg.index)
    state = "does not exist yet" if found is None else f"was written for data set '{found}'"
    if dry_run:
        from pipeline.data.build import annotated_classes

        names = annotated_classes(prepare_cfg, str(params))
        print(f"{cfg.index} {state}: pricing the {len(names)} classes of {wanted} ({params}, section prepare)",
              file=sys.stderr)
        return names
    raise UserError(cfg.index, f"{state}, but {params} prepares '{wanted}': run `dvc repro prepare` first "
                               f"(--dry-run prices the {wanted} classes without it)")


def adhoc_name(names: list[str], classes_file: Path | None, dataset: str | None, split_setting: str,
               split: int | None, subset: str, index: Path | None) -> str:
    """The folder name of an ad-hoc run under outputs/priors: readable, and the same for the same classes."""
    if classes_file is not None:
        return file_slug(classes_file.stem).rsplit("-", 1)[0]
    if dataset is not None:
        return f"{dataset.lower()}_{split_setting}_split{split or 0}_{subset}"
    if index is not None:
        data = read_json(index)
        return f"{file_slug(str(data.get('dataset', index.parent.name))).rsplit('-', 1)[0]}_index"
    slug = "_".join(file_slug(name).rsplit("-", 1)[0] for name in names)
    if len(slug) <= 60:
        return slug
    return f"{slug[:40].rstrip('_')}_and_{len(names) - 1}_more_{file_slug(','.join(names)).rsplit('-', 1)[1]}"


def _inside(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path == folder or folder in path.parents


def output_folders(cfg: GenerateConfig, adhoc: bool, out: Path | None, name: str) -> tuple[Path, Path]:
    """(out, store) of a run. ``cfg.out`` is the DVC pipeline's output, which an ad-hoc run must not touch."""
    shared_store = cfg.store or cfg.out.parent / STORE_NAME
    if not adhoc:
        target = out or cfg.out
        return target, cfg.store or target.parent / STORE_NAME
    target, store = (ADHOC_ROOT / name, shared_store) if out is None else (out, cfg.store or out)
    if _inside(target, cfg.out) or _inside(cfg.out, target):
        raise UserError("--out", f"{target} holds the DVC pipeline's priors ({cfg.out}, the generate stage's "
                                 f"output); a run that names its classes writes elsewhere (default "
                                 f"{ADHOC_ROOT}/<name>)")
    if _inside(store, cfg.out):
        raise UserError("--store", f"{store} is inside the DVC pipeline's output {cfg.out}; use the shared item "
                                   f"cache {shared_store}")
    return target, store


@app.command()
@exit_on_user_error
def main(
    classes: Annotated[str | None, typer.Option(
        help='Comma-separated class names, e.g. "skiing,surfing".')] = None,
    classes_file: Annotated[Path | None, typer.Option(
        help="A UTF-8 file with one class name a line ('#' starts a comment).")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="thumos14 | activitynet: take the classes of a shipped zero-shot split.")] = None,
    split_setting: Annotated[str, typer.Option(help="With --dataset: 75_25 or 50_50.")] = "75_25",
    split: Annotated[int | None, typer.Option(help="With --dataset: the split number (default 0).")] = None,
    subset: Annotated[str, typer.Option(
        help="With --dataset: seen (train classes), unseen (test classes) or all.")] = "all",
    index: Annotated[Path | None, typer.Option(
        help="All classes of a canonical index (cache/prepare/index.json).")] = None,
    params: Annotated[Path | None, typer.Option(
        help="Read settings from section 'generate' of this params file (CLI options override them); "
             "without a class option, the classes come from its 'index'.")] = None,
    text_backend: Annotated[str | None, typer.Option(
        help=f"{' | '.join(TEXT_BACKENDS)} (default offline).")] = None,
    image_backend: Annotated[str | None, typer.Option(
        help=f"{' | '.join(IMAGE_BACKENDS)} (default offline).")] = None,
    text_model: Annotated[str | None, typer.Option(
        help="openai: a chat model (default gpt-4o); hf: a model id or local folder.")] = None,
    image_model: Annotated[str | None, typer.Option(
        help="openai: dall-e-3 or gpt-image-1; diffusers: a model id or local folder.")] = None,
    openworld_dir: Annotated[Path | None, typer.Option(
        help="openworld: a folder holding one folder of images per class.")] = None,
    k: Annotated[int | None, typer.Option(help="Sentences and images per class (default 4).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every backend (default 0).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Stored image side in pixels (default 224).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Requests in flight at once per API backend (default 8).")] = None,
    max_retries: Annotated[int | None, typer.Option(
        help="Retries on 429, 5xx and timeouts (default 4).")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Per-request timeout in seconds (default 60).")] = None,
    device: Annotated[str | None, typer.Option(help="Local models: auto | cpu | cuda | cuda:N.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder. Default: the params' generate.out (cache/priors) for the DVC stage; "
             "outputs/priors/<name> for a run that names its classes (it never writes the pipeline's output).")
    ] = None,
    store: Annotated[Path | None, typer.Option(
        help="The content-addressed item cache shared by runs (default cache/prior_items; with an explicit "
             "--out of an ad-hoc run, that folder itself).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be generated and its estimated cost; call nothing, write nothing.")] = False,
) -> None:
    """Generate (or reuse from the cache) k descriptions and k paired images per action class.

    Writes OUT/priors.json for the complete classes, their items in OUT/texts and OUT/images (content-addressed,
    made in the shared item cache --store) and OUT/manifest.jsonl. A run with a class option is ad hoc: OUT
    defaults to outputs/priors/<name> and the DVC pipeline's output stays as it is. Exit status 1 when a class
    lacks its k pairs (a table says why), 2 on bad input,
    130 when interrupted (all finished items are kept: run again to finish). Example:
    python -m pipeline.generate --classes "skiing,surfing" --text-backend openai --image-backend openai --dry-run
    """
    params_data = load_params(params) if params is not None else {}
    params_section = None
    if params is not None:  # the door: each section this run reads, checked (prepare only where there is one)
        params_section = validate_section(params_data, "generate", params, fill_defaults=False)
        if "prepare" in params_data:
            params_data = {**params_data, "prepare": validate_section(params_data, "prepare", params)}
    overrides = {"text_backend": text_backend, "image_backend": image_backend, "text_model": text_model,
                 "image_model": image_model, "openworld_dir": openworld_dir, "k": k, "seed": seed,
                 "image_size": image_size, "concurrency": concurrency, "max_retries": max_retries,
                 "timeout_s": timeout_s, "device": device, "store": store}
    cfg = build_config(params_section, params, overrides)
    adhoc = any(option is not None for option in (classes, classes_file, dataset, index))
    if params is not None and not adhoc and split is None:
        names = stage_classes(cfg, params_data, params, dry_run)
    else:
        names = class_sources.pick_classes(classes, classes_file, dataset, split_setting, split, subset, index,
                                           default_index=cfg.index if params is not None else None)
    name = adhoc_name(names, classes_file, dataset, split_setting, split, subset, index) if adhoc else ""
    target, item_store = output_folders(cfg, adhoc, out, name)
    code = run(cfg.model_copy(update={"out": target, "store": item_store}), names, dry_run=dry_run)
    raise typer.Exit(code)


if __name__ == "__main__":
    sys.exit(app())
