"""Stage `results`: GRIZAL, the training-free baselines and the ablations on unseen classes, over several splits.

Writes ``results.md`` (the README's results table), ``results.json`` and, per run, ``<split>/<variant>/`` with
``model.pt``, ``metrics.json`` and, last, ``run.json``. On the demo world, the reference detectors built from its
actor plans (``cache/demo/actors.json``, ``pipeline.modelling.reference``) are rows of the table too. A closed-set
GRIZAL run comes first: it shows that the data set is learnable at all before open-set numbers are read. The grid,
its run cache and the table live in ``pipeline.modelling.grid``; this door checks the params and writes the outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pipeline.common import atomic_write_json, atomic_write_text, exit_on_user_error, load_params
from pipeline.data.build import load_prepared
from pipeline.data.demo import ACTORS_FILE
from pipeline.modelling.grid import results_table, run_grid
from pipeline.modelling.reference import load_actor_plans

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])

SECTIONS = ("prepare", "model", "loss", "train", "localization", "evaluate", "results")


def checked_params(values: dict[str, Any], where: Path, features: Path) -> dict[str, Any]:
    """The door: every section the runs read, checked as given (defaults are filled where each is read, so the
    run keys stay those of the sections as written), each open-set split id against the data set's splits, and
    model.k against the stored prior pairs."""
    from pipeline.data.build import check_split_id
    from pipeline.modelling.fit import check_prior_pairs
    from pipeline.params_schema import validate_params

    checked = validate_params(values, SECTIONS, where, fill_defaults=False)
    prepare = {**checked["prepare"], "protocol": "open"}
    if checked["prepare"].get("protocol", "closed") == "open":
        for split_id in checked["results"].get("splits", []):
            check_split_id(prepare, split_id, where, "results.splits")
    check_prior_pairs(checked["model"], features, where)
    return checked


@app.command()
@exit_on_user_error
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params.yaml with a `results` section."),
    prepare_dir: Path = typer.Option(Path("cache/prepare"), "--prepare", help="Output of the prepare stage."),
    features: Path = typer.Option(Path("cache/features"), help="Folder holding the feature stores."),
    out: Path = typer.Option(Path("cache/results"), help="Output folder."),
    demo: Path = typer.Option(Path("cache/demo"), help="The demo world's folder: its actors.json gives the "
                                                       "reference rows (demo world only)."),
) -> None:
    """Train and evaluate every configured variant on every configured split; write the results table.

    Finished runs whose settings and inputs are unchanged are reused, so a rerun after a crash or a kill, or
    after a change that touches some runs only, trains only what is missing."""
    values = checked_params(load_params(params), params, features)
    index, _ = load_prepared(prepare_dir)
    plans_path = demo / ACTORS_FILE
    plans = load_actor_plans(plans_path) if index.dataset == "demo" else None
    grid = run_grid(values, index, features, out, where=params, plans=plans, plans_path=plans_path)
    table = results_table(grid)
    atomic_write_json(out / "results.json", grid)
    atomic_write_text(out / "results.md", table)
    print(table)


if __name__ == "__main__":
    app()
