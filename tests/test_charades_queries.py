"""Charades-STA as the field scores it: training sentences train, each test (video, sentence) query is localized
in its own video only, and R@n,IoU=m and the top-1 mean IoU come out per query."""

import json

import numpy as np
import pytest

from grizal.metrics import score_grounding
from pipeline.data.charades import parse_charades_sta
from pipeline.data.splits import closed_set
from pipeline.modelling.inference import evaluate_model


def test_recall_and_top1_iou_by_hand():
    moments = [np.array([0.0, 10.0]), np.array([5.0, 15.0]), np.array([20.0, 30.0])]
    ranked = [np.array([[0.0, 8.0], [0.0, 10.0]]),   # IoU 0.8 then 1.0
              np.array([[0.0, 5.0], [6.0, 15.0]]),    # IoU 0 then 0.9
              np.zeros((0, 2))]                        # no moment: a miss, IoU 0
    scores = score_grounding(moments, ranked, ns=(1, 5), tious=(0.5, 0.7))
    assert scores.recall == {(1, 0.5): pytest.approx(1 / 3), (1, 0.7): pytest.approx(1 / 3),
                             (5, 0.5): pytest.approx(2 / 3), (5, 0.7): pytest.approx(2 / 3)}
    assert scores.mean_iou == pytest.approx((0.8 + 0.0 + 0.0) / 3)
    assert scores.queries == 3


def _write_sta(root, index, test_ids):
    """The world's annotations written as Charades-STA files: one line per moment, its class as the sentence."""
    lines = {"train": [], "test": []}
    for vid, video in index.videos.items():
        for s in video.segments:
            lines["test" if vid in test_ids else "train"].append(f"{vid} {s.start:.2f} {s.end:.2f}##{s.label}.")
    for subset, rows in lines.items():
        (root / f"charades_sta_{subset}.txt").write_text("\n".join(rows) + "\n")
    (root / "Charades_v1.csv").write_text("id,length\n" + "".join(
        f"{vid},{video.duration}\n" for vid, video in index.videos.items()))
    return parse_charades_sta({subset: root / f"charades_sta_{subset}.txt" for subset in lines},
                              [root / "Charades_v1.csv"])


def test_test_sentences_never_train(tmp_path):
    (tmp_path / "charades_sta_train.txt").write_text("A 0 5##person opens a door.\nB 1 4##person sits down.\n")
    (tmp_path / "charades_sta_test.txt").write_text("C 0 3##person drinks water.\nC 2 6##person sits down.\n")
    (tmp_path / "c.csv").write_text("id,length\nA,10\nB,10\nC,10\n")
    index = parse_charades_sta({"train": tmp_path / "charades_sta_train.txt",
                                "test": tmp_path / "charades_sta_test.txt"}, [tmp_path / "c.csv"])
    split = closed_set(index)
    assert split.seen == ["person opens a door", "person sits down"]  # training sentences only
    assert split.unseen == ["person drinks water", "person sits down"]  # the test queries
    assert (split.train_videos, split.test_videos) == (["A", "B"], ["C"])


def test_each_query_is_localized_in_its_own_video_and_scored_per_query(tiny_world, tmp_path):
    index = _write_sta(tmp_path, tiny_world["index"], test_ids={"demo_test_003", "demo_train_005"})
    split = closed_set(index)
    outcome = evaluate_model(index, split, tiny_world["features"], tiny_world["checkpoint"], {}, [0.5],
                             tmp_path / "out", n_plots=0, device="cpu")
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())["results"]
    for vid, rows in predictions.items():
        own = {s.label for s in index.videos[vid].segments}
        assert rows and {r["label"] for r in rows} <= own  # never another video's sentence

    queries = [(vid, s) for vid in split.test_videos for s in index.videos[vid].segments]
    moments = [np.array([s.start, s.end]) for _, s in queries]
    ranked = [np.array([r["segment"] for r in predictions[vid] if r["label"] == s.label]).reshape(-1, 2)
              for vid, s in queries]
    by_hand = score_grounding(moments, ranked)
    metrics = outcome["metrics"]["grizal"]
    assert metrics["counts"] == {"queries": len(queries)}
    assert metrics["recall"] == {f"R@{n},IoU={m}": round(by_hand.recall[n, m], 6) for n in (1, 5)
                                 for m in (0.5, 0.7)}
    assert metrics["mIoU"] == round(by_hand.mean_iou, 6)
    assert all(outcome["metrics"][name]["scored"] is False for name in ("baseline_name_bg", "baseline_priors"))
    table = (tmp_path / "out" / "per_class.md").read_text()
    assert "R@1,IoU=0.5" in table and f"| {len(queries)} |" in table
