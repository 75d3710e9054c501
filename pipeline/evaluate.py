"""Stage `evaluate`: run the trained model and the training-free baselines on the test split, then score.

Writes to the output folder ``predictions.json``, ``baseline_name_bg_predictions.json`` and
``baseline_priors_predictions.json`` (ActivityNet result format; ``pipeline.modelling.baselines``),
``per_class.md`` and ``plots/*.png`` (probability against ground truth for a sample of test videos); and the
metrics to ``--metrics`` (``metrics/evaluate.json``, git-tracked, for ``dvc metrics show`` and ``dvc exp show``).
The work is ``pipeline.modelling.inference``; scoring any result file is ``python -m pipeline.score``.
``diagnosis/`` holds GRIZAL's DETAD-style error diagnosis at ``evaluate.diagnosis_tiou``
(``pipeline.modelling.diagnosis``; docs/diagnosis.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.common import exit_on_user_error, load_params
from pipeline.data.build import load_prepared
from pipeline.modelling.inference import NO_GROUND_TRUTH, evaluate_model, grounding_table
from pipeline.modelling.scoring import format_table, thresholds_from_params
from pipeline.params_schema import validate_section

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.command()
@exit_on_user_error
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params.yaml with `localization` and `evaluate`."),
    prepare_dir: Path = typer.Option(Path("cache/prepare"), "--prepare", help="Output of the prepare stage."),
    features: Path = typer.Option(Path("cache/features"), help="Folder holding the feature stores."),
    model: Path = typer.Option(Path("cache/train/model.pt"), help="Checkpoint from the train stage."),
    out: Path = typer.Option(Path("cache/evaluate"), help="Output folder."),
    metrics: Path = typer.Option(Path("metrics/evaluate.json"), help="Where the metrics go (git-tracked, for "
                                                                     "`dvc metrics show` and `dvc exp show`)."),
) -> None:
    """Evaluate the trained model and the training-free baselines on the split's test videos."""
    values = load_params(params)
    cfg = validate_section(values, "evaluate", params)
    thresholds = thresholds_from_params(cfg, params)
    loc_cfg = validate_section(values, "localization", params)
    index, split = load_prepared(prepare_dir)
    outcome = evaluate_model(index, split, features, model, loc_cfg, thresholds, out, cfg["n_plots"], cfg["device"],
                             metrics, where=params, diagnosis_tiou=cfg["diagnosis_tiou"],
                             baseline_loc=cfg["baseline_localization"])
    for name, report in outcome["reports"].items():
        print(f"== {name} ({split.protocol}, {len(split.unseen)} classes, {len(split.test_videos)} test videos)")
        print(format_table(report))
    if index.dataset == "charades" and "mIoU" in outcome["metrics"]["grizal"]:  # Charades-STA, per query
        print(f"== grizal ({len(split.test_videos)} test videos, per query)")
        print(grounding_table(outcome["metrics"]["grizal"]), end="")
    elif not outcome["reports"]:
        print(NO_GROUND_TRUTH)
    elif outcome["unscored"]:
        print(f"not scored (no ground truth in the test videos): {', '.join(outcome['unscored'])}")
    print(f"wrote {out}")


if __name__ == "__main__":
    app()
