"""Stage `train`: fit GRIZAL's learnable layers over the cached feature stores (``pipeline.modelling.fit``).

Writes ``model.pt`` and ``checkpoint.pt`` (resumable) to the output folder and, with DVCLive, the per-epoch
loss terms and learning rate to ``metrics/train/``.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m pipeline.train ...`` (DDP; gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from pipeline.common import exit_on_user_error, load_params
from pipeline.data.build import load_prepared
from pipeline.modelling.fit import TrainConfig, check_prior_pairs, train
from pipeline.params_schema import validate_section

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.command()
@exit_on_user_error
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params.yaml with `train`, `model` and `loss` sections."),
    prepare_dir: Path = typer.Option(Path("cache/prepare"), "--prepare", help="Output of the prepare stage."),
    features: Path = typer.Option(Path("cache/features"), help="Folder holding rgb.zarr, flow.zarr, priors.zarr."),
    out: Path = typer.Option(Path("cache/train"), help="Output folder (model.pt, checkpoint.pt)."),
    live: Path = typer.Option(Path("metrics/train"), help="DVCLive folder for the per-epoch loss terms and "
                                                          "learning rate (`dvc metrics show`, `dvc plots show`)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train GRIZAL's learnable layers on the seen classes of the split."""
    values = load_params(params)
    cfg = TrainConfig.from_dict(validate_section(values, "train", params), params)
    # As given (no defaults written in): the checkpoint's config digest hashes the model section as written.
    model_cfg = validate_section(values, "model", params, fill_defaults=False)
    loss_cfg = validate_section(values, "loss", params, fill_defaults=False)
    check_prior_pairs(model_cfg, features, params)
    index, split = load_prepared(prepare_dir)
    path = train(index, split, features, model_cfg, loss_cfg, cfg, out, progress, live_dir=live, where=params)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {path}")


if __name__ == "__main__":
    app()
