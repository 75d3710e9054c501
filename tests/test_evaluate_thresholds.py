"""Averaged and reported tIoU thresholds: params, CLI, tables and metrics agree on which is which."""

import json

import pytest
from typer.testing import CliRunner

from pipeline.common import UserError
from pipeline.modelling.scoring import (
    Thresholds,
    describe_tious,
    evaluate_detection,
    format_per_class,
    format_table,
    load_ground_truth,
    load_predictions,
    parse_tious,
    thresholds_from_params,
)
from pipeline.score import app

GT = {
    "database": {
        "v1": {"subset": "validation", "duration": 30, "annotations": [{"segment": [0, 10], "label": "jump"}]},
        "v2": {"subset": "validation", "duration": 30, "annotations": [{"segment": [5, 15], "label": "run"}]},
    }
}
# tIoU 0.8 with the jump, 0.5 with the run: AP 1 up to those thresholds, 0 above
PREDS = {
    "results": {
        "v1": [{"label": "jump", "score": 0.9, "segment": [0, 8]}],
        "v2": [{"label": "run", "score": 0.8, "segment": [5, 25]}],
    }
}
PROTOCOL = parse_tious("0.5:0.05:0.95")


def report_of(tious, report_tious=None):
    return evaluate_detection(load_ground_truth(GT), load_predictions(PREDS), tious, report_tious=report_tious)


def test_ranges_are_the_decimal_thresholds_without_drift():
    assert PROTOCOL == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert parse_tious("0.3:0.1:0.7") == [0.3, 0.4, 0.5, 0.6, 0.7]


def test_average_is_over_the_averaged_thresholds_and_columns_are_the_reported_ones():
    report = report_of(PROTOCOL, [0.5, 0.75, 0.95])
    # mAP per threshold: both classes hit at 0.5; only the jump (tIoU 0.8) up to 0.8; nothing above
    expected = {"0.5": 1.0, "0.55": 0.5, "0.6": 0.5, "0.65": 0.5, "0.7": 0.5, "0.75": 0.5, "0.8": 0.5}
    expected |= {"0.85": 0.0, "0.9": 0.0, "0.95": 0.0}
    assert report["mAP"] == pytest.approx(expected, abs=1e-12)
    assert report["average_mAP"] == pytest.approx(4 / 10, abs=1e-12)
    assert report["tIoUs"]["reported"] == ["0.5", "0.75", "0.95"]
    table = format_table(report)
    assert table.splitlines()[0].split() == ["tIoU", "0.5", "0.75", "0.95", "avg"]
    assert table.splitlines()[1].split() == ["mAP", "(%)", "100.00", "50.00", "0.00", "40.00"]
    assert "avg: mean mAP over tIoU 0.5:0.05:0.95" in table
    markdown = format_per_class(report, "markdown")
    assert "| jump | 1 | 1 | 100.00 | 100.00 | 0.00 | 70.00 |" in markdown
    assert "| **mean** | | | 100.00 | 50.00 | 0.00 | 40.00 |" in markdown
    csv = format_per_class(report, "csv").splitlines()
    assert csv[0] == "class,gt,predictions,AP@0.5,AP@0.75,AP@0.95,average_AP"


def test_thresholds_from_params_drive_the_report_as_the_evaluate_stage_passes_them():
    thresholds = thresholds_from_params({"tious": PROTOCOL, "report_tious": [0.5, 0.75, 0.95]})
    assert report_of(thresholds) == report_of(PROTOCOL, [0.5, 0.75, 0.95])


def test_reported_thresholds_outside_the_averaged_set_are_scored_but_not_averaged():
    report = report_of([0.5, 0.7], [0.9])
    assert list(report["mAP"]) == ["0.5", "0.7", "0.9"]
    assert report["average_mAP"] == pytest.approx((1.0 + 0.5) / 2)
    assert report["per_class"][0]["average_AP"] == pytest.approx(1.0)  # jump: AP 1 at 0.5 and 0.7


def test_without_reported_thresholds_every_averaged_one_is_shown():
    report = report_of([0.3, 0.4, 0.5, 0.6, 0.7])
    keys = ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert report["tIoUs"] == {"averaged": keys, "reported": keys}
    assert format_table(report).splitlines()[0].split() == ["tIoU", "0.3", "0.4", "0.5", "0.6", "0.7", "avg"]


def test_a_reported_threshold_off_by_an_ulp_is_the_averaged_one():
    thresholds = Thresholds.of(PROTOCOL, [0.5, 0.75, 0.9500000000000001])
    assert len(thresholds.scored) == 10 and 0.95 in thresholds.scored


def test_params_give_averaged_and_reported_thresholds():
    cfg = {"tious": PROTOCOL, "report_tious": [0.5, 0.75, 0.95]}
    assert thresholds_from_params(cfg) == Thresholds(tuple(PROTOCOL), (0.5, 0.75, 0.95))
    assert thresholds_from_params({"tious": [0.3, 0.5]}).reported == (0.3, 0.5)
    assert thresholds_from_params({"tious": [0.3, 0.5], "report_tious": None}).reported == (0.3, 0.5)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({}, "evaluate.tious is missing"),
        ({"tious": "0.5:0.05:0.95"}, "evaluate.tious must be a non-empty list"),
        ({"tious": []}, "evaluate.tious must be a non-empty list"),
        ({"tious": [0.5, 1.5]}, "evaluate.tious: thresholds must be numbers in (0, 1]"),
        ({"tious": [0.5, True]}, "evaluate.tious: thresholds must be numbers in (0, 1]"),
        ({"tious": [0.5], "report_tious": [0.5, 0.50000000001]}, "evaluate.report_tious: a threshold is given twice"),
    ],
)
def test_bad_threshold_params_are_one_clear_error(cfg, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        thresholds_from_params(cfg, "params.yaml")


def test_describe_tious():
    assert describe_tious(["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]) == (
        "0.5:0.05:0.95"
    )
    assert describe_tious(["0.3", "0.4", "0.5", "0.6", "0.7"]) == "0.3:0.1:0.7"
    assert describe_tious(["0.5", "0.75", "0.95"]) == "0.5,0.75,0.95"
    assert describe_tious(["0.5"]) == "0.5"


def test_cli_reports_columns_and_averages_the_protocol(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    (tmp_path / "pred.json").write_text(json.dumps(PREDS))
    out = tmp_path / "metrics.json"
    args = ["--gt", tmp_path / "gt.json", "--pred", tmp_path / "pred.json", "--tiou", "0.5:0.05:0.95",
            "--report-tiou", "0.5,0.75,0.95", "--json-out", out]  # fmt: skip
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["tIoU", "0.5", "0.75", "0.95", "avg"]
    metrics = json.loads(out.read_text())
    assert metrics["average_mAP"] == pytest.approx(0.4) and len(metrics["mAP"]) == 10
    assert metrics["tIoUs"]["reported"] == ["0.5", "0.75", "0.95"]
    bad = CliRunner().invoke(app, [str(a) for a in args[:-2]] + ["--report-tiou", "0.5,2"])
    assert bad.exit_code == 2 and "error: --report-tiou: thresholds must lie in (0, 1]" in bad.stderr
