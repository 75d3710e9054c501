"""DETAD-style diagnosis: each false-positive type, the top-xG limit, the rank blocks, false negatives by bin and
DETAD's input files, on hand-computed cases."""

import json

import numpy as np
import pytest

from pipeline.modelling.diagnosis import BINS, bin_of, detad_export, diagnose, format_diagnosis, write_diagnosis
from pipeline.modelling.scoring import load_ground_truth, load_predictions

GT = {"database": {
    "a": {"subset": "validation", "duration": 500.0, "annotations": [
        {"segment": [10, 20], "label": "A"}, {"segment": [30, 45], "label": "A"}, {"segment": [50, 60], "label": "B"}]},
    "b": {"subset": "validation", "duration": 50.0, "annotations": [{"segment": [0, 10], "label": "A"}]},
    "c": {"subset": "validation", "duration": 20.0, "annotations": []},
}}


def pred(label, score, start, end):
    return {"label": label, "score": score, "segment": [start, end]}


PREDS = {"results": {
    "a": [pred("A", 0.95, 10, 20),  # true positive on A[10,20]
          pred("A", 0.9, 11, 20),  # tIoU 0.9 with the A already taken: double detection
          pred("A", 0.85, 50, 60),  # tIoU 1 with B: wrong label
          pred("A", 0.8, 30, 33),  # tIoU 3/15 = 0.2 with A[30,45]: localization error
          pred("A", 0.75, 55, 70),  # tIoU 5/20 = 0.25 with B: confusion
          pred("A", 0.65, 80, 90),  # no overlap: background
          pred("B", 0.5, 50, 60),  # true positive
          pred("B", 0.4, 10, 20),  # tIoU 1 with an A: wrong label
          pred("Z", 0.99, 0, 5)],  # a class without ground truth: left out
    "c": [pred("A", 0.7, 0, 5)],  # a video without ground truth: background
    "b": [pred("A", 0.6, 0, 10)],  # true positive (ranked 8th of A)
}}
TYPES = ("true positive", "double detection", "wrong label", "localization error", "confusion", "background")


def counts(*numbers):
    return dict(zip(TYPES, numbers, strict=True))


def run(**kwargs):
    return diagnose(load_ground_truth(GT), load_predictions(PREDS), 0.5, **kwargs)


def test_each_false_positive_type_per_class_and_overall():
    fp = run()["false_positives"]
    by_class = {r["class"]: r for r in fp["per_class"]}
    assert by_class["A"]["gt"] == 3 and by_class["A"]["predictions"] == 8
    assert by_class["A"]["counts"] == counts(2, 1, 1, 1, 1, 2)
    assert by_class["B"]["counts"] == counts(1, 0, 1, 0, 0, 0)
    assert fp["counts"] == counts(3, 1, 2, 1, 1, 2) and fp["predictions"] == 10
    assert "Z" not in by_class


def test_removing_each_error_type_gains_the_hand_computed_map():
    fp = run()["false_positives"]
    # A: hits at ranks 1 and 8 of 8, G 3: AP = 1/3 x 1 + 1/3 x 2/8 = 5/12; B: AP 1. Dropping the two background
    # predictions puts A's second hit at rank 6 (AP 1/3 + 1/3 x 2/6 = 4/9); dropping any one other type, at 7 (3/7).
    assert fp["mAP"] == pytest.approx((5 / 12 + 1) / 2)
    gain = fp["mAP_gain_without"]
    assert gain["background"] == pytest.approx(1 / 72)
    for kind in ("double detection", "wrong label", "localization error", "confusion"):
        assert gain[kind] == pytest.approx(1 / 168)
    assert "true positive" not in gain


def test_rank_blocks_follow_each_class_g():
    blocks = {b["top"]: b for b in run()["false_positives"]["by_rank"]}
    assert len(blocks) == 10
    assert blocks["1G"]["counts"] == counts(2, 1, 1, 0, 0, 0)  # A ranks 1-3, B rank 1
    assert blocks["2G"]["counts"] == counts(0, 0, 1, 1, 1, 1)  # A ranks 4-6, B rank 2
    assert blocks["3G"]["counts"] == counts(1, 0, 0, 0, 0, 1)  # A ranks 7-8
    assert blocks["4G"]["predictions"] == 0


def test_limit_factor_keeps_the_top_predictions_before_matching():
    fp = run(limit_factor=2)["false_positives"]
    by_class = {r["class"]: r for r in fp["per_class"]}
    assert by_class["A"]["counts"] == counts(1, 1, 1, 1, 1, 1)  # p7 (0.65) and b's true positive (0.6) cut
    assert by_class["B"]["counts"] == counts(1, 0, 1, 0, 0, 0)


def test_min_tiou_decides_localization_against_background():
    by_class = {r["class"]: r for r in run(min_tiou=0.22)["false_positives"]["per_class"]}
    assert by_class["A"]["counts"] == counts(2, 1, 1, 0, 1, 3)  # 0.2 < 0.22: background; 0.25 stays confusion


def test_false_negatives_by_length_coverage_and_instances():
    fn = run()["false_negatives"]
    assert (fn["gt"], fn["missed"]) == (4, 1)  # A[30,45] is missed at tIoU 0.5

    def table(trait):
        return {r["bin"]: (r["gt"], r["missed"]) for r in fn["by"][trait] if r["gt"]}

    assert table("length") == {"M": (3, 0), "L": (1, 1)}  # 10 s is in (6, 12], 15 s in (12, 18]
    assert table("coverage") == {"XS": (2, 0), "S": (1, 1), "XL": (1, 0)}  # 10/500 on the edge 0.02: XS
    assert table("num-instances") == {"XS": (2, 0), "S": (2, 1)}


def test_bins_are_right_closed_with_the_lowest_edge_included():
    edges = BINS["thumos14"]["length"][0]
    values = np.array([0, 3, 3.0001, 18, 19, -1, np.nan])
    assert bin_of(values, edges).tolist() == [0, 0, 1, 3, 4, -1, -1]
    assert bin_of(np.array([1.2]), BINS["thumos14"]["coverage"][0]).tolist() == [-1]  # past the last edge


def test_detad_export_has_its_fields_and_only_known_labels(tmp_path):
    detad_export(load_ground_truth(GT), load_predictions(PREDS), None, tmp_path)
    gt = json.loads((tmp_path / "detad_ground_truth.json").read_text())
    assert {"database", "taxonomy", "version"} <= set(gt)  # DETAD refuses a file without the three
    first = gt["database"]["a"]["annotations"][1]
    assert first["segment"] == [30, 45] and first["label"] == "A"
    assert first["length"] == 15 and first["coverage"] == pytest.approx(0.03) and first["num-instances"] == 2
    assert gt["database"]["a"]["subset"] == "validation"
    preds = json.loads((tmp_path / "detad_predictions.json").read_text())
    assert {"results", "version", "external_data"} <= set(preds)
    labels = {p["label"] for items in preds["results"].values() for p in items}
    assert labels == {"A", "B"}  # Z has no ground truth: DETAD's reader would stop on it
    assert sum(len(v) for v in preds["results"].values()) == 10


def test_written_files_and_markdown(tmp_path):
    report = {"average_tIoU": 0.25, "mean_best_tIoU": 0.75}
    write_diagnosis(tmp_path, load_ground_truth(GT), load_predictions(PREDS), None, 0.5, "thumos14", report)
    text = (tmp_path / "diagnosis.md").read_text()
    assert "| **all** | 4 | 10 | 30.0 | 10.0 | 20.0 | 10.0 | 10.0 | 20.0 |" in text
    assert "average tIoU (the paper's mIoU): 25.00%" in text and "mean best tIoU: 75.00%" in text
    assert (tmp_path / "diagnosis.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "diagnosis.json").read_text())["tIoU"] == 0.5
    assert format_diagnosis(run()).count("| length |") == 5


def test_score_cli_writes_the_diagnosis(tmp_path):
    from typer.testing import CliRunner

    from pipeline.score import app

    (tmp_path / "gt.json").write_text(json.dumps(GT))
    (tmp_path / "pred.json").write_text(json.dumps(PREDS))
    out = tmp_path / "diag"
    result = CliRunner().invoke(app, ["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                                      "--tiou", "0.5", "--diagnose-out", str(out), "--subset", "validation"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "diagnosis.json").read_text())["false_positives"]["counts"] == counts(3, 1, 2, 1, 1, 2)
    assert {p.name for p in out.iterdir()} == {"diagnosis.md", "diagnosis.json", "diagnosis.png",
                                               "detad_ground_truth.json", "detad_predictions.json"}
    bad = CliRunner().invoke(app, ["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                                   "--diagnose-out", str(out), "--bins", "charades"])
    assert bad.exit_code == 2 and "error: --bins: expected one of thumos14, activitynet" in bad.output


def test_evaluate_writes_grizals_diagnosis_of_its_own_predictions(tiny_world, tmp_path):
    import dataclasses

    from pipeline.modelling.inference import evaluate_model
    from pipeline.modelling.scoring import ground_truth_of

    split = tiny_world["split"]
    every = dataclasses.replace(split, test_videos=sorted(tiny_world["index"].videos),
                                unseen=[*split.seen, *split.unseen])
    evaluate_model(tiny_world["index"], every, tiny_world["features"], tiny_world["checkpoint"], {}, [0.5],
                   tmp_path, n_plots=0, device="cpu", diagnosis_tiou=0.3)
    written = json.loads((tmp_path / "diagnosis" / "diagnosis.json").read_text())
    gt = ground_truth_of(tiny_world["index"], every.test_videos, every.unseen)
    predictions = load_predictions(tmp_path / "predictions.json")
    assert written == json.loads(json.dumps(diagnose(gt, predictions, 0.3, every.unseen, "thumos14")))
    assert written["false_negatives"]["gt"] == len(gt.label) > 0
    assert "mean best tIoU" in (tmp_path / "diagnosis" / "diagnosis.md").read_text()


def test_no_prediction_misses_every_instance_and_profiles_nothing():
    diagnosis = diagnose(load_ground_truth(GT), load_predictions({"results": {}}), 0.5)
    assert diagnosis["false_positives"]["predictions"] == 0 and diagnosis["false_positives"]["mAP"] == 0.0
    assert (diagnosis["false_negatives"]["gt"], diagnosis["false_negatives"]["missed"]) == (4, 4)
    assert "| **all** | 4 | 0 | - |" in format_diagnosis(diagnosis)
