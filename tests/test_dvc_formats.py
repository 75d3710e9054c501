"""`dvc repro evaluate` on a tiny data set written in each format the project reads (THUMOS14's BMN-style JSON,
ActivityNet's JSON, Charades-STA's text files): four short demo-world videos, renamed and annotated as that data
set's own, a tiny model, one epoch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.project_copy import copy_project

from pipeline.data.demo import DemoConfig, make_video

pytestmark = pytest.mark.slow
VIDEOS = (("training", 0), ("training", 1), ("training", 5), ("validation", 3))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    (root / "rendered").mkdir()
    demo = DemoConfig(seed=0, size=128, fps=8, min_duration=10.0, max_duration=11.0, second_class_prob=0.0)
    return root, dict(make_video(root / "rendered", demo, subset, n) for subset, n in VIDEOS)


def _thumos(folder: Path, world: dict) -> dict:
    names = {vid: f"video_{'validation' if e['subset'] == 'training' else 'test'}_{i:07d}"
             for i, (vid, e) in enumerate(world.items())}
    data = {names[vid]: {"duration_second": e["duration"], "annotations": e["annotations"]}
            for vid, e in world.items()}
    (folder / "thumos.json").write_text(json.dumps(data))
    return names, {"dataset": "thumos14", "annotations": str(folder / "thumos.json")}


def _activitynet(folder: Path, world: dict) -> dict:
    names = {vid: f"v_{vid}" for vid in world}
    data = {"version": "1.3", "database": {names[vid]: e for vid, e in world.items()}}
    (folder / "anet.json").write_text(json.dumps(data))
    return names, {"dataset": "activitynet", "annotations": str(folder / "anet.json")}


def _charades(folder: Path, world: dict) -> dict:
    names = {vid: f"C{i:04d}" for i, vid in enumerate(world)}
    ann = folder / "annotations"
    ann.mkdir()
    for subset, name in (("training", "train"), ("validation", "test")):
        (ann / f"sta_{name}.txt").write_text("".join(
            f"{names[vid]} {a['segment'][0]:.1f} {a['segment'][1]:.1f}##{a['label']}.\n"
            for vid, e in world.items() if e["subset"] == subset for a in e["annotations"]))
    (ann / "charades.csv").write_text("id,length\n" + "".join(f"{names[vid]},{e['duration']}\n"
                                                             for vid, e in world.items()))
    return names, {"dataset": "charades", "annotations": str(ann), "sta_train": str(ann / "sta_train.txt"),
                   "sta_test": str(ann / "sta_test.txt"), "charades_csv": [str(ann / "charades.csv")]}


@pytest.mark.parametrize("write", [_thumos, _activitynet, _charades], ids=["thumos14", "activitynet", "charades"])
def test_repro_through_evaluate(world, write, tmp_path):
    root, database = world
    names, prepare = write(tmp_path, database)
    (tmp_path / "videos").mkdir()
    for vid, name in names.items():
        shutil.copy(root / "rendered" / f"{vid}.mp4", tmp_path / "videos" / f"{name}.mp4")
    dest = copy_project(tmp_path / "project")
    (dest / "dvc.lock").unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["prepare"] = {**prepare, "video_dir": str(tmp_path / "videos"), "protocol": "closed"}
    params["extract"].update(T=16, device="cpu")
    params["extract"]["frames"]["sample_fps"] = 2.0
    params["extract"]["clip"].update(model="grizal-tiny", pretrained=None)
    params["model"].update(width=32, heads=2, vle_layers=1, ofe_layers=1, k=2)
    params["generate"].update(image_size=64, k=2)
    params["train"].update(epochs=1, batch_size=64)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)

    result = subprocess.run(["dvc", "repro", "evaluate"], cwd=dest, env=env, capture_output=True, text=True,
                            timeout=600)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((dest / "cache/evaluate/metrics.json").read_text())["grizal"]
    summary = json.loads((dest / "metrics/evaluate.json").read_text())["grizal"]  # DVC's short metric
    if prepare["dataset"] == "charades":
        assert set(summary) == {"R1_IoU0.5", "R1_IoU0.7", "mIoU"} and summary["mIoU"] == metrics["mIoU"]
        assert set(metrics["recall"]) == {"R@1,IoU=0.5", "R@1,IoU=0.7", "R@5,IoU=0.5", "R@5,IoU=0.7"}
        assert metrics["counts"]["queries"] == len(database["demo_test_003"]["annotations"])
    else:
        assert 0.0 <= metrics["average_mAP"] <= 1.0 and summary["avg_mAP"] == metrics["average_mAP"]
    predictions = json.loads((dest / "cache/evaluate/predictions.json").read_text())["results"]
    assert set(predictions) == {names["demo_test_003"]}
