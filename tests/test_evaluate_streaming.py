"""Evaluation streams the test videos in chunks (memory O(chunk x C x T)); its predictions and metrics are those
of the whole (V, C, T) array computed at once."""

import dataclasses
import json

import pytest

from pipeline.features.inputs import FeatureSet, standardized
from pipeline.modelling.baselines import BASELINES, baseline_curves
from pipeline.modelling.checkpoint import load_model
from pipeline.modelling.inference import (
    curves_to_results,
    evaluate_model,
    metrics_json,
    model_probs,
    score,
    video_chunks,
)
from pipeline.modelling.scoring import ground_truth_of

TIOUS = [0.3, 0.5, 0.7]


def test_chunks_hold_at_most_the_budget_and_at_least_one_video():
    ids = [f"v{i}" for i in range(7)]
    assert video_chunks(ids, n_classes=2, T=10, max_floats=45) == [["v0", "v1"], ["v2", "v3"], ["v4", "v5"], ["v6"]]
    assert video_chunks(ids, n_classes=200, T=100, max_floats=10) == [[vid] for vid in ids]
    assert video_chunks([], n_classes=3, T=4) == []


def _whole_array(world, split):
    """The evaluation as it was: one (V, C, T) array per method, then localization and scoring."""
    model, checkpoint = load_model(world["checkpoint"], "cpu")
    feature_set = FeatureSet.open(world["features"])
    ids, classes = list(split.test_videos), list(split.unseen)
    durations = {vid: world["index"].videos[vid].duration for vid in ids}
    videos = feature_set.videos(ids, durations, checkpoint["T"], True)
    priors = feature_set.priors(classes)
    curves = {"grizal": model_probs(model, *standardized(videos, priors, checkpoint["feature_stats"])),
              **baseline_curves(videos, priors)}
    gt = ground_truth_of(world["index"], ids, classes)
    results = {name: curves_to_results(probs, videos, classes, {}) for name, probs in curves.items()}
    return results, {name: metrics_json(score(results[name], gt, classes, TIOUS)) for name in results}


@pytest.mark.parametrize("max_floats", [1, 1 << 24], ids=["one video a chunk", "one chunk"])
def test_streamed_evaluation_equals_the_whole_array(tiny_world, tmp_path, max_floats):
    split = tiny_world["split"]
    every = dataclasses.replace(split, test_videos=sorted(tiny_world["index"].videos),
                                unseen=[*split.seen, *split.unseen])  # 4 videos x 4 classes
    expected_results, expected_metrics = _whole_array(tiny_world, every)

    outcome = evaluate_model(tiny_world["index"], every, tiny_world["features"], tiny_world["checkpoint"], {},
                             TIOUS, tmp_path, n_plots=3, device="cpu", max_floats=max_floats)

    assert outcome["metrics"] == expected_metrics
    predictions = json.loads((tmp_path / "predictions.json").read_text())["results"]
    assert predictions == expected_results["grizal"] and set(outcome["metrics"]) == {"grizal", *BASELINES}
    for name in BASELINES:
        assert json.loads((tmp_path / f"{name}_predictions.json").read_text())["results"] == expected_results[name]
    assert len(list((tmp_path / "plots").glob("*.png"))) == 3  # the first 3 videos, each holding a class
