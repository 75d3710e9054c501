"""Check the scorer against ActivityNet reference cases, then cross-check it against a plain loop.

`tests/data/eval_reference/` holds 20 ActivityNet-format cases whose expected mAP came from an implementation
that agrees exactly with ActivityNet's `Evaluation/eval_detection.py` (see its README): the evidence that
`pipeline.modelling.scoring` scores by the protocol. They hold no tied scores, so ties, recall and the tIoU averages
are covered by the loop below, which restates ActivityNet's `compute_average_precision_detection` (per
class, predictions by `argsort()[::-1]` of the score, ground truths of the video by `argsort()[::-1]` of
tIoU, first unmatched one at or above the threshold) and T3AL's pairwise tIoU average, one prediction at a
time, with the sorts made stable so that ties are reproducible.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from grizal.metrics import Instances, score_detections
from pipeline.modelling.scoring import evaluate_detection, load_ground_truth, load_predictions, parse_tious

THUMOS_GT = Path(__file__).parents[1] / "pipeline/data/shipped/thumos_annotations/thumos_anno_action.json"
REFERENCE_CASES = sorted((Path(__file__).parent / "data/eval_reference").glob("case_*.json"))
REFERENCE_TIOUS = {"tious_0.3_to_0.7": "0.3:0.1:0.7", "tious_0.5_to_0.95": "0.5:0.05:0.95"}


def score_reference_case(case, tiou_spec, report_tious=None):
    return evaluate_detection(
        load_ground_truth(case["ground_truth"], name="ground_truth"),
        load_predictions(case["predictions"], name="predictions"),
        parse_tious(tiou_spec),
        subset="validation",
        report_tious=report_tious,
    )


def test_all_reference_cases_are_present():
    assert [p.name for p in REFERENCE_CASES] == [f"case_{i}.json" for i in range(100, 120)]


@pytest.mark.parametrize("tiou_set", sorted(REFERENCE_TIOUS))
@pytest.mark.parametrize("path", REFERENCE_CASES, ids=lambda p: p.stem)
def test_scorer_matches_the_activitynet_reference_case(path, tiou_set):
    case = json.loads(path.read_text())
    expected = case["expected"][tiou_set]
    report = score_reference_case(case, REFERENCE_TIOUS[tiou_set])
    assert list(report["mAP"]) == list(expected["mAP"])
    for key, value in expected["mAP"].items():
        assert report["mAP"][key] == pytest.approx(value, abs=1e-9, rel=0), key
    assert report["average_mAP"] == pytest.approx(expected["average_mAP"], abs=1e-9, rel=0)


def test_reported_columns_leave_the_protocol_average_alone():
    case = json.loads(REFERENCE_CASES[0].read_text())
    expected = case["expected"]["tious_0.5_to_0.95"]
    report = score_reference_case(case, "0.5:0.05:0.95", report_tious=[0.5, 0.75, 0.95])
    assert report["tIoUs"] == {"averaged": list(expected["mAP"]), "reported": ["0.5", "0.75", "0.95"]}
    assert report["average_mAP"] == pytest.approx(expected["average_mAP"], abs=1e-9, rel=0)
    three = np.mean([expected["mAP"][k] for k in ("0.5", "0.75", "0.95")])
    assert abs(three - expected["average_mAP"]) > 0.01  # the 3-threshold mean is a different number


def loop_iou(target, candidates):
    inter = (np.minimum(target[1], candidates[:, 1]) - np.maximum(target[0], candidates[:, 0])).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    return np.divide(inter, union, out=np.zeros_like(union), where=union > 0)


def loop_interpolated_ap(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def loop_class_ap(gt_video, gt_seg, p_video, p_seg, p_score, tious):
    if len(p_video) == 0:
        return np.zeros(len(tious))
    taken = np.zeros((len(tious), len(gt_video)), dtype=bool)
    order = np.argsort(p_score, kind="stable")[::-1]
    tp = np.zeros((len(tious), len(order)))
    for i, p in enumerate(order):
        same_video = np.flatnonzero(gt_video == p_video[p])
        if len(same_video) == 0:
            continue
        ious = loop_iou(p_seg[p], gt_seg[same_video])
        by_iou = np.argsort(ious, kind="stable")[::-1]
        for t, thr in enumerate(tious):
            for j in by_iou:
                if ious[j] < thr:
                    break
                if taken[t, same_video[j]]:
                    continue
                taken[t, same_video[j]] = True
                tp[t, i] = 1
                break
    tp_cum = np.cumsum(tp, axis=1)
    fp_cum = np.cumsum(1 - tp, axis=1)
    return np.array(
        [
            loop_interpolated_ap(tp_cum[t] / (tp_cum[t] + fp_cum[t]), tp_cum[t] / len(gt_video))
            for t in range(len(tious))
        ]
    )


def loop_scores(gt, pred, num_classes, tious, recall_at, recall_ious):
    ap = np.full((num_classes, len(tious)), np.nan)
    for c in range(num_classes):
        g, p = gt.label == c, pred.label == c
        if g.any():
            ap[c] = loop_class_ap(
                gt.video[g], gt.segments[g], pred.video[p], pred.segments[p], pred.scores[p], tious
            )
    pairs, best, hits = [], [], {(n, m): [] for n in recall_at for m in recall_ious}
    for j in range(len(gt)):
        rows = np.flatnonzero((pred.label == gt.label[j]) & (pred.video == gt.video[j]))
        rows = rows[np.argsort(pred.scores[rows], kind="stable")[::-1]]
        ious = loop_iou(gt.segments[j], pred.segments[rows])
        pairs += ious.tolist()
        best.append(ious.max(initial=0.0))
        for n, m in hits:
            hits[(n, m)].append(bool(len(ious)) and ious[:n].max() >= m)
    average_tiou = float(np.mean(pairs)) if pairs else float("nan")
    return ap, average_tiou, float(np.mean(best)), {k: float(np.mean(v)) for k, v in hits.items()}


def assert_agrees(gt, pred, num_classes, tious, recall_at=(1, 5), recall_ious=(0.5, 0.7)):
    got = score_detections(gt, pred, num_classes, tious, recall_at, recall_ious)
    ap, average_tiou, mean_best, recall = loop_scores(gt, pred, num_classes, tious, recall_at, recall_ious)
    np.testing.assert_allclose(got.ap, ap, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(got.average_tiou, average_tiou, atol=1e-9, equal_nan=True)
    assert got.mean_best_tiou == pytest.approx(mean_best, abs=1e-9)
    assert got.recall == pytest.approx(recall, abs=1e-9)


def random_case(rng, n_videos, n_classes, n_gt, n_pred):
    """Coarse grids for times and scores so that ties in both are frequent."""

    def segments(n):
        start = rng.integers(0, 20, n) / 2
        return np.stack([start, start + rng.integers(0, 10, n) / 2], axis=1)

    gt = Instances(rng.integers(0, n_videos, n_gt), rng.integers(0, n_classes, n_gt), segments(n_gt))
    pred = Instances(
        rng.integers(0, n_videos, n_pred),
        rng.integers(0, n_classes, n_pred),
        segments(n_pred),
        rng.integers(0, 5, n_pred) / 4,
    )
    return gt, pred


def test_agrees_with_the_loop_on_random_cases_with_ties():
    rng = np.random.default_rng(7)
    for _ in range(150):
        n_classes = int(rng.integers(1, 5))
        gt, pred = random_case(
            rng, int(rng.integers(1, 6)), n_classes, int(rng.integers(1, 15)), int(rng.integers(0, 40))
        )
        assert_agrees(gt, pred, n_classes, [0.1, 0.3, 0.5, 0.7, 0.95])


def test_agrees_with_the_loop_on_thumos_ground_truth():
    gt_file = load_ground_truth(THUMOS_GT)
    test_rows = [i for i, v in enumerate(gt_file.video) if gt_file.videos[v].subset == "test"]
    videos = sorted({gt_file.video[i] for i in test_rows})
    classes = sorted({gt_file.label[i] for i in test_rows})
    v_index, c_index = {v: i for i, v in enumerate(videos)}, {c: i for i, c in enumerate(classes)}
    gt = Instances(
        [v_index[gt_file.video[i]] for i in test_rows],
        [c_index[gt_file.label[i]] for i in test_rows],
        gt_file.segments[test_rows],
    )
    rng = np.random.default_rng(0)
    # Jittered copies of the ground truth (some relabelled) plus random segments, with tied scores.
    pick = rng.choice(len(gt), 2000)
    jitter = gt.segments[pick] + rng.normal(0, 1.5, (len(pick), 2))
    start = rng.uniform(0, 200, 1000)
    labels = np.where(rng.random(len(pick)) < 0.9, gt.label[pick], rng.integers(0, len(classes), len(pick)))
    pred = Instances(
        np.concatenate([gt.video[pick], rng.integers(0, len(videos), 1000)]),
        np.concatenate([labels, rng.integers(0, len(classes), 1000)]),
        np.concatenate([np.sort(jitter, axis=1), np.stack([start, start + rng.uniform(0, 10, 1000)], 1)]),
        np.round(rng.random(3000), 2),
    )
    assert_agrees(gt, pred, len(classes), [0.3, 0.4, 0.5, 0.6, 0.7])
