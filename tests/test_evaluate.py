"""The standalone evaluation CLI and its ActivityNet-format helpers."""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.common import UserError
from pipeline.modelling.scoring import (
    evaluate_detection,
    format_per_class,
    format_table,
    load_ground_truth,
    load_predictions,
    parse_classes,
    parse_tious,
    write_predictions,
)
from pipeline.score import app

THUMOS_GT = Path(__file__).parents[1] / "pipeline/data/shipped/thumos_annotations/thumos_anno_action.json"
ANET_GT = {
    "version": "1.3",
    "database": {
        "v1": {
            "subset": "validation",
            "duration": 40.0,
            "annotations": [
                {"segment": [0, 10], "label": "jump"},
                {"segment": [20, 30], "label": "jump"},
                {"segment": [5, 15], "label": "run"},
            ],
        },
        "v2": {
            "subset": "validation",
            "duration": 30.0,
            "annotations": [{"segment": [0, 10], "label": "swim"}],
        },
        "v3": {
            "subset": "training",
            "duration": 30.0,
            "annotations": [{"segment": [0, 10], "label": "dive"}],
        },
    },
}

PREDS = {
    "results": {
        "v1": [
            {"label": "jump", "score": 0.9, "segment": [0, 10]},
            {"label": "jump", "score": 0.8, "segment": [0, 8]},
            {"label": "jump", "score": 0.7, "segment": [22, 30]},
            {"label": "run", "score": 0.6, "segment": [5, 15]},
        ],
        "v2": [{"label": "swim", "score": 0.5, "segment": [20, 30]}],
        "v404": [{"label": "jump", "score": 1.0, "segment": [0, 10]}],
        "v3": [{"label": "dive", "score": 1.0, "segment": [0, 10]}],
    }
}
# jump: AP 5/6 at 0.5 and 1/2 at 0.9 (see tests/test_metrics.py); run: 1; swim: 0 (its only prediction misses)
EXPECTED_MAP = {"0.5": (5 / 6 + 1 + 0) / 3, "0.9": (1 / 2 + 1 + 0) / 3}


def write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def run_cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_scores_a_result_file(tmp_path):
    gt, pred = write(tmp_path, "gt.json", ANET_GT), write(tmp_path, "pred.json", PREDS)
    out, table = tmp_path / "out/metrics.json", tmp_path / "out/per_class.csv"
    code, stdout, stderr = run_cli(
        "--gt", gt, "--pred", pred, "--tiou", "0.5,0.9", "--subset", "validation",
        "--json-out", out, "--per-class-out", table,
    )  # fmt: skip
    assert code == 0, stderr
    metrics = json.loads(out.read_text())
    assert metrics["mAP"] == pytest.approx(EXPECTED_MAP, abs=1e-9)
    assert metrics["average_mAP"] == pytest.approx(sum(EXPECTED_MAP.values()) / 2, abs=1e-9)
    # pairs (same video and class): jump 3 x 2 -> 2.6, run 1 x 1 -> 1, swim 1 x 1 -> 0
    assert metrics["average_tIoU"] == pytest.approx(3.6 / 8, abs=1e-9)
    assert metrics["mean_best_tIoU"] == pytest.approx((1 + 0.8 + 1 + 0) / 4, abs=1e-9)
    assert set(metrics["recall"]) == {"R@1,IoU=0.5", "R@1,IoU=0.7", "R@5,IoU=0.5", "R@5,IoU=0.7"}
    assert metrics["recall"]["R@1,IoU=0.5"] == pytest.approx(2 / 4)
    assert metrics["recall"]["R@5,IoU=0.7"] == pytest.approx(3 / 4)
    # v404 is unknown; v3 is in another subset: both ignored, neither counted as a false positive
    assert metrics["counts"] == {
        "videos": 2,
        "classes": 3,
        "gt_instances": 4,
        "predictions": 5,
        "predictions_ignored_unknown_video": 2,
        "predictions_ignored_unscored_class": 0,
    }
    assert "per_class" not in metrics
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [r["class"] for r in rows] == ["jump", "run", "swim"]
    assert float(rows[0]["AP@0.5"]) == pytest.approx(5 / 6, abs=1e-6)
    assert rows[2]["predictions"] == "1" and float(rows[2]["average_AP"]) == 0.0
    assert "61.11" in stdout and "50.00" in stdout  # (5/6 + 1 + 0) / 3 and (1/2 + 1 + 0) / 3
    assert "ignored 2 prediction(s)" in stderr


def test_classes_option_scores_only_those_classes(tmp_path):
    gt, pred = write(tmp_path, "gt.json", ANET_GT), write(tmp_path, "pred.json", PREDS)
    split = write(tmp_path, "split.json", {"seen": ["run"], "unseen": ["jump", "swim"]})
    for spec in ("jump,swim", split):
        out = tmp_path / "m.json"
        code, _, stderr = run_cli(
            "--gt", gt, "--pred", pred, "--tiou", "0.5", "--classes", spec, "--json-out", out
        )
        assert code == 0, stderr
        metrics = json.loads(out.read_text())
        assert metrics["mAP"]["0.5"] == pytest.approx((5 / 6 + 0) / 2)
        assert metrics["counts"]["predictions_ignored_unscored_class"] == 2  # run in v1, dive in v3


def test_class_annotated_only_outside_the_scored_videos_is_reported_not_scored(tmp_path):
    gt_data = load_ground_truth(ANET_GT)
    report = evaluate_detection(
        gt_data, load_predictions(PREDS), [0.5], ["jump", "dive"], subset="validation"
    )
    assert report["classes_without_gt"] == ["dive"]
    assert report["mAP"]["0.5"] == pytest.approx(5 / 6)
    assert report["per_class"][0]["class"] == "dive" and report["per_class"][0]["AP"]["0.5"] is None


def test_unknown_class_is_a_user_error():
    with pytest.raises(UserError, match="no annotation anywhere.*'jumpp'"):
        evaluate_detection(load_ground_truth(ANET_GT), load_predictions(PREDS), [0.5], ["jumpp"])


def test_videos_argument_narrows_the_scored_set():
    gt_data = load_ground_truth(ANET_GT)
    report = evaluate_detection(gt_data, load_predictions(PREDS), [0.5], videos=["v2"])
    assert report["counts"]["videos"] == 1 and report["counts"]["gt_instances"] == 1
    with pytest.raises(UserError, match="not in the ground truth"):
        evaluate_detection(gt_data, load_predictions(PREDS), [0.5], videos=["nope"])


def test_three_ground_truth_layouts_read_the_same():
    index = {
        "schema": 1,
        "dataset": "custom",
        "classes": ["jump"],
        "videos": {
            "video_test_0000001": {
                "path": None,
                "duration": 40.0,
                "fps": 25.0,
                "subset": "test",
                "segments": [{"start": 1.5, "end": 4.0, "label": "jump"}],
            }
        },
    }
    bmn = {
        "video_test_0000001": {
            "duration_second": 40.0,
            "annotations": [{"segment": ["1.5", "4.0"], "label": "jump"}],
        }
    }
    anet = {
        "database": {
            "video_test_0000001": {
                "subset": "test",
                "duration": 40.0,
                "annotations": [{"segment": [1.5, 4.0], "label": "jump"}],
            }
        }
    }
    loaded = [load_ground_truth(x) for x in (index, bmn, anet)]
    assert [g.format for g in loaded] == ["index", "bmn", "activitynet"]
    for g in loaded:
        assert g.video == ["video_test_0000001"] and g.label == ["jump"]
        np.testing.assert_array_equal(g.segments, [[1.5, 4.0]])
        assert g.videos["video_test_0000001"].subset == "test"  # BMN: from the THUMOS name
        assert g.videos["video_test_0000001"].duration == 40.0


def test_shipped_thumos_annotations_score_perfect_predictions(tmp_path):
    gt_data = load_ground_truth(THUMOS_GT)
    results = {}
    for vid, label, seg in zip(gt_data.video, gt_data.label, gt_data.segments, strict=True):
        results.setdefault(vid, []).append({"label": label, "score": 0.5, "segment": seg.tolist()})
    pred = tmp_path / "pred.json"
    write_predictions(pred, results)
    out = tmp_path / "m.json"
    code, _, stderr = run_cli("--gt", THUMOS_GT, "--pred", pred, "--tiou", "0.3:0.1:0.7", "--subset", "test",
                              "--json-out", out)  # fmt: skip
    assert code == 0, stderr
    metrics = json.loads(out.read_text())
    assert list(metrics["mAP"]) == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    assert metrics["average_mAP"] == pytest.approx(1.0)
    assert metrics["counts"]["videos"] == 213 and metrics["counts"]["classes"] == 20
    assert metrics["counts"]["predictions_ignored_unknown_video"] == sum(
        1 for v in gt_data.video if gt_data.videos[v].subset == "validation"
    )


def test_write_predictions_round_trips_numpy_values(tmp_path):
    path = tmp_path / "p.json"
    write_predictions(
        path, {"v1": [{"label": "jump", "score": np.float32(0.25), "segment": np.array([1.0, 2.5])}]}
    )
    loaded = load_predictions(path)
    assert loaded.video == ["v1"] and loaded.label == ["jump"]
    np.testing.assert_array_equal(loaded.segments, [[1.0, 2.5]])
    assert loaded.scores.tolist() == [0.25]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "file not found"),
        ("{not json", "not valid JSON"),
        ({"predictions": {}}, "'results' key"),
        ({"results": {"v1": {"label": "a"}}}, "expected a list"),
        (
            {"results": {"v1": [{"label": "a", "score": 0.5, "segment": [5, 2]}]}},
            "start 5 is after its end 2",
        ),
        (
            {"results": {"v1": [{"label": "a", "score": "high", "segment": [0, 1]}]}},
            "score 'high' is not a finite",
        ),
        ({"results": {"v1": [{"label": "a", "score": True, "segment": [0, 1]}]}}, "score True"),
        ({"results": {"v1": [{"label": "a", "score": 0.5, "segment": [0]}]}}, "segment must be"),
        ({"results": {"v1": [{"label": "a", "score": 0.5, "segment": ["x", 1]}]}}, "'x' is not a number"),
        ({"results": {"v1": [{"score": 0.5, "segment": [0, 1]}]}}, "label must be"),
        ('{"results": {"v1": [{"label": "a", "score": NaN, "segment": [0, 1]}]}}', "score nan"),
    ],
)
def test_bad_prediction_file_is_one_line_error(tmp_path, content, problem):
    gt = write(tmp_path, "gt.json", ANET_GT)
    pred = tmp_path / "pred.json" if content is None else write(tmp_path, "pred.json", content)
    code, stdout, stderr = run_cli("--gt", gt, "--pred", pred)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith(f"error: {pred}: ")
    assert problem in stderr
    assert "Traceback" not in stdout + stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ([1, 2], "non-empty JSON object"),
        ({"taxonomy": []}, "unrecognised ground-truth layout"),
        (
            {"database": {"v1": {"annotations": [{"segment": [3, 1], "label": "a"}]}}},
            "start 3 is after its end 1",
        ),
        ({"database": {"v1": {"annotations": [{"segment": [0, 1], "label": 7}]}}}, "label must be"),
        ({"database": {"v1": {"annotations": "none"}}}, "'annotations' must be a list"),
        ({"schema": 1, "videos": {"v1": {"segments": [{"start": 0, "label": "a"}]}}}, "None is not a number"),
    ],
)
def test_bad_ground_truth_is_one_line_error(tmp_path, content, problem):
    gt = write(tmp_path, "gt.json", content)
    pred = write(tmp_path, "pred.json", PREDS)
    code, _, stderr = run_cli("--gt", gt, "--pred", pred)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith(f"error: {gt}: ")
    assert problem in stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--tiou", "0.5,abc"], "--tiou: cannot read 'abc'"),
        (["--tiou", "0,0.5"], "(0, 1]"),
        (["--tiou", "0.5,0.50"], "given twice"),
        (["--subset", "testing"], "no video has subset 'testing'"),
        (["--per-class-out", "table.xlsx"], ".csv or .md"),
        (["--recall-at", "0"], "--recall-at"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, problem):
    gt, pred = write(tmp_path, "gt.json", ANET_GT), write(tmp_path, "pred.json", PREDS)
    code, _, stderr = run_cli("--gt", gt, "--pred", pred, *args)
    assert code == 2 and stderr.count("\n") == 1
    assert problem in stderr


def test_missing_required_options():
    code, _, stderr = run_cli("--gt", "x.json")
    assert code == 2 and "--gt and --pred are required" in stderr


def test_parse_tious_ranges():
    assert parse_tious("0.3:0.1:0.7") == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert parse_tious("0.5:0.05:0.95") == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert parse_tious("0.5, 0.75,0.95") == [0.5, 0.75, 0.95]


def test_parse_classes_from_text_file(tmp_path):
    listing = write(tmp_path, "classes.txt", "jump\n\nswim \n")
    assert parse_classes(str(listing)) == ["jump", "swim"]


def test_formats_render_every_class_and_threshold():
    report = evaluate_detection(
        load_ground_truth(ANET_GT), load_predictions(PREDS), [0.5, 0.9], subset="validation"
    )
    table = format_table(report)
    assert table.splitlines()[0].split() == ["tIoU", "0.5", "0.9", "avg"]
    assert "R@5,IoU=0.7 (%)" in table
    markdown = format_per_class(report, "markdown")
    assert markdown.count("\n") == 2 + 3 + 1
    assert "| jump | 2 | 3 | 83.33 | 50.00 | 66.67 |" in markdown
    assert not math.isnan(report["average_mAP"])
