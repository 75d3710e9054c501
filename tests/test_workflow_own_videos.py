"""The README's "Your own unlabelled videos" journey under `dvc repro`, through the commands the README prints: a
custom data set (ActivityNet-format JSON, a video folder, an unseen-class list; the test videos' annotations are
empty), the README's own `prepare` section, and every stage to the results grid, without a traceback or a stop."""

import json

import pytest
from support.custom_world import custom_project, run_workflow
from support.doc_workflows import commands

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unlabelled_project(custom_world_template, tmp_path_factory):
    dest, env, database = custom_project(custom_world_template, tmp_path_factory.mktemp("own_videos"))
    for entry in database.values():
        if entry["subset"] != "training":
            entry["annotations"] = []  # the videos to localize in: no ground truth
    (dest / "my_annotations.json").write_text(json.dumps({"database": database}))
    return dest, env, database


def test_own_unlabelled_videos_run_to_the_end_and_say_nothing_was_scored(unlabelled_project):
    dest, env, database = unlabelled_project
    outputs = [result.stdout for result in run_workflow(commands("own-unlabelled-videos"), dest, env)]
    assert outputs[-1].startswith("# Per-class results") and "Nothing scored: no ground truth to score" in outputs[-1]
    predictions = json.loads((dest / "cache/evaluate/predictions.json").read_text())["results"]
    test_ids = {vid for vid, entry in database.items() if entry["subset"] != "training"}
    assert set(predictions) <= test_ids and predictions
    metrics = json.loads((dest / "cache/evaluate/metrics.json").read_text())
    assert metrics["grizal"]["scored"] is False
    assert list((dest / "cache/evaluate/plots").glob("*.png"))
    assert (dest / "cache/results/results.md").read_text().startswith("No run was scored")
