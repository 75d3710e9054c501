"""Score any temporal localization results: ActivityNet-format files in, metrics table and JSON out.

    python -m pipeline.score --gt GT.json --pred PRED.json [--tiou 0.3:0.1:0.7] [--classes split.json]
        [--diagnose-out DIR [--diagnose-tiou 0.5] [--bins thumos14|activitynet]]

The scoring itself is ``pipeline.modelling.scoring``, shared with the DVC ``evaluate`` stage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pipeline.common import UserError, exit_on_user_error
from pipeline.modelling.diagnosis import BINS, of_subset, write_diagnosis
from pipeline.modelling.scoring import (
    Thresholds,
    evaluate_detection,
    format_table,
    load_ground_truth,
    load_predictions,
    parse_classes,
    parse_floats,
    parse_ints,
    parse_tious,
    write_metrics,
    write_per_class,
)

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.callback(invoke_without_command=True)
@exit_on_user_error
def main(
    ctx: typer.Context,
    gt: Path | None = typer.Option(
        None, "--gt", help="Ground truth: ActivityNet, prepare index or THUMOS/BMN JSON."
    ),
    pred: Path | None = typer.Option(None, "--pred", help="Predictions in the ActivityNet result format."),
    tiou: str = typer.Option(
        "0.5:0.05:0.95", help="tIoU thresholds averaged into avg mAP, e.g. 0.5:0.05:0.95 or 0.3:0.1:0.7."
    ),
    report_tiou: str | None = typer.Option(
        None, help="tIoU thresholds shown as mAP columns, e.g. 0.5,0.75,0.95 (default: those of --tiou)."
    ),
    subset: str | None = typer.Option(None, help="Score only videos of this subset (e.g. validation, test)."),
    classes: str | None = typer.Option(
        None, help="Score only these classes: 'A,B', a split.json (unseen) or a file."
    ),
    json_out: Path | None = typer.Option(None, "--json-out", help="Write the metrics JSON here."),
    per_class_out: Path | None = typer.Option(
        None, "--per-class-out", help="Write per-class AP here (.csv or .md)."
    ),
    recall_at: str = typer.Option("1,5", help="n of R@n."),
    recall_iou: str = typer.Option("0.5,0.7", help="tIoU m of R@n,IoU=m."),
    diagnose_out: Path | None = typer.Option(
        None, "--diagnose-out", help="Write the DETAD-style diagnosis and DETAD's input files to this folder."
    ),
    diagnose_tiou: float = typer.Option(0.5, help="tIoU of the diagnosis."),
    bins: str = typer.Option("thumos14", help="DETAD's bins of the false negatives: thumos14 or activitynet."),
) -> None:
    """Score PRED against GT: print a table, optionally write metrics JSON and a per-class table."""
    if ctx.invoked_subcommand is not None:
        return
    if gt is None or pred is None:
        raise UserError(None, "--gt and --pred are required (see --help)")
    if diagnose_out is not None and (bins not in BINS or not 0 < diagnose_tiou <= 1):
        raise UserError("--bins" if bins not in BINS else "--diagnose-tiou",
                        f"expected one of {', '.join(BINS)}" if bins not in BINS else "must lie in (0, 1]")
    if per_class_out is not None and per_class_out.suffix.lower() not in (".csv", ".md", ".markdown"):
        raise UserError(per_class_out, "per-class table must be a .csv or .md file")
    thresholds = Thresholds.of(
        parse_tious(tiou), None if report_tiou is None else parse_tious(report_tiou, "--report-tiou")
    )
    wanted = parse_classes(classes) if classes is not None else None
    top_n, recall_ious = parse_ints(recall_at, "--recall-at"), parse_floats(recall_iou, "--recall-iou")
    ground_truth = load_ground_truth(gt)
    predictions = load_predictions(pred)
    subsets = sorted({str(info.subset) for info in ground_truth.videos.values()})
    if subset is None and len(subsets) > 1:
        print(f"note: scoring every subset ({', '.join(subsets)}); choose one with --subset", file=sys.stderr)
    report = evaluate_detection(
        ground_truth,
        predictions,
        thresholds,
        wanted,
        subset=subset,
        recall_at=top_n,
        recall_ious=recall_ious,
    )
    print(format_table(report))
    counts = report["counts"]
    ignored = counts["predictions_ignored_unknown_video"], counts["predictions_ignored_unscored_class"]
    if any(ignored):
        print(
            f"note: ignored {ignored[0]} prediction(s) of videos not scored "
            f"and {ignored[1]} of classes not scored",
            file=sys.stderr,
        )
    if report["classes_without_gt"]:
        print(
            f"note: {len(report['classes_without_gt'])} requested class(es) have no instance in the scored "
            f"videos and are left out of mAP, e.g. {report['classes_without_gt'][0]!r}",
            file=sys.stderr,
        )
    if json_out is not None:
        write_metrics(json_out, report)
    if per_class_out is not None:
        write_per_class(per_class_out, report)
    if diagnose_out is not None:
        diagnose_out.mkdir(parents=True, exist_ok=True)
        write_diagnosis(diagnose_out, of_subset(ground_truth, subset), predictions, wanted, diagnose_tiou, bins, report)
        print(f"wrote {diagnose_out}", file=sys.stderr)


if __name__ == "__main__":
    app()
