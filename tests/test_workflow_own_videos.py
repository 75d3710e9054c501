"""The README's "Your own unlabelled videos" journey under `dvc repro`, through the commands the README prints: a
custom data set (ActivityNet-format JSON, a video folder, an unseen-class list; the test videos' annotations are
empty), the README's own `prepare` section, and every stage to the results grid, without a traceback or a stop."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.doc_workflows import commands
from support.project_copy import copy_project

from pipeline.data import demo_vocab
from pipeline.data.demo import DemoConfig, render_world

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def readme_prepare_section() -> dict:
    """The `prepare` section of the README's "Your own videos" YAML block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"# Your own videos:.*?\n(prepare:\n.*?)```", text, re.S).group(1)
    return yaml.safe_load(block)["prepare"]


@pytest.fixture(scope="module")
def unlabelled_project(tmp_path_factory):
    dest = copy_project(tmp_path_factory.mktemp("own_videos"))
    (dest / "dvc.lock").unlink(missing_ok=True)
    world = render_world(dest / "rendered", DemoConfig(videos_per_class_train=1, videos_per_class_test=1,
                                                       min_duration=8.0, max_duration=10.0), workers=2)
    database = world["database"]
    for entry in database.values():
        if entry["subset"] != "training":
            entry["annotations"] = []  # the videos to localize in: no ground truth
    (dest / "my_annotations.json").write_text(json.dumps({"database": database}))
    (dest / "rendered" / "videos").rename(dest / "my_videos")
    (dest / "my_unseen_classes.txt").write_text("\n".join(demo_vocab.unseen_classes(0)) + "\n")

    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["prepare"] = readme_prepare_section()
    params["extract"]["clip"].update(model="grizal-tiny", pretrained=None)  # a custom data set: no demo CLIP
    params["extract"]["frames"]["sample_fps"] = 2.0
    params["extract"]["T"] = 16
    params["generate"]["image_size"] = 64
    params["model"].update(width=32, heads=2, vle_layers=1, ofe_layers=1)
    params["train"].update(epochs=1, batch_size=64)
    params["results"].update(splits=[0], variants=["GRIZAL"], closed_set=False, seeds=[0])
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "OMP_NUM_THREADS": "2"}
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)
    return dest, env, database


def test_own_unlabelled_videos_run_to_the_end_and_say_nothing_was_scored(unlabelled_project):
    dest, env, database = unlabelled_project
    outputs = []
    for command in commands("own-unlabelled-videos"):
        result = subprocess.run(command, shell=True, cwd=dest, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        assert "Traceback" not in result.stdout + result.stderr
        outputs.append(result.stdout)
    assert outputs[-1].startswith("# Per-class results") and "Nothing scored: no ground truth to score" in outputs[-1]
    predictions = json.loads((dest / "cache/evaluate/predictions.json").read_text())["results"]
    test_ids = {vid for vid, entry in database.items() if entry["subset"] != "training"}
    assert set(predictions) <= test_ids and predictions
    metrics = json.loads((dest / "cache/evaluate/metrics.json").read_text())
    assert metrics["grizal"]["scored"] is False
    assert list((dest / "cache/evaluate/plots").glob("*.png"))
    assert (dest / "cache/results/results.md").read_text().startswith("No run was scored")
