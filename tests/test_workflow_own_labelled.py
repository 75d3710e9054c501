"""The README's "Your own labelled videos" journey, through the commands the README prints: a custom data set
(ActivityNet-format JSON, a video folder, an unseen-class list, the README's own `prepare` section), `grizal check`,
then `dvc repro` to the results grid, scored against the test videos' ground truth."""

import json

import pytest
from support.custom_world import custom_project, run_workflow
from support.doc_workflows import commands

pytestmark = pytest.mark.slow


def test_own_labelled_videos_are_checked_trained_and_scored(custom_world_template, tmp_path):
    dest, env, database = custom_project(custom_world_template, tmp_path)
    check, repro, show = run_workflow(commands("own-labelled-videos"), dest, env)
    assert "MISSING" not in check.stdout
    assert f"videos: {len(database)} of {len(database)} found in my_videos" in check.stdout
    assert check.stdout.rstrip().endswith("ready: `dvc repro` can start")
    assert "Running stage 'evaluate'" in repro.stdout and "Running stage 'results'" in repro.stdout
    metrics = json.loads((dest / "cache/evaluate/metrics.json").read_text())
    for method in ("grizal", "baseline_name_bg", "baseline_priors"):  # scored: a number, not an unscored n/a
        assert metrics[method].get("scored") is not False and 0.0 <= metrics[method]["average_mAP"] <= 1.0
    assert show.stdout.startswith("| class |") and "Nothing scored" not in show.stdout
    predictions = json.loads((dest / "cache/evaluate/predictions.json").read_text())["results"]
    assert predictions and set(predictions) <= {v for v, e in database.items() if e["subset"] != "training"}
