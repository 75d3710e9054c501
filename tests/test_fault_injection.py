"""Fault injection: generate, extract and train are killed (SIGKILL, real processes) at a seeded random point,
rerun, and must give exactly what an uninterrupted run gives: priors.json and every prior item byte for byte,
the feature stores' arrays bitwise, model.pt's state dict equal.

The kill point is reached deterministically: each stage runs under a small wrapper that, at the N-th call of
one step (saving a prior item, writing a video's features, saving the epoch checkpoint), creates a marker
file and stops there; the test kills the process once the marker is there. N is drawn from a seeded RNG
among the calls the uninterrupted run makes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.common import atomic_write_json
from pipeline.data.build import prepare
from pipeline.data.demo import DemoConfig, make_video
from pipeline.features.store import open_store

REPO = Path(__file__).resolve().parents[1]
UNSEEN = "circle slides right"
SEED = int(os.environ.get("GRIZAL_FAULT_SEED", "16"))
# Runs `python -m STAGE ARGS` after wrapping TARGET (module:attr or module:Class.method): at its N-th call,
# before doing anything, the wrapper creates MARKER and waits to be killed.
HOLD = """
import importlib, runpy, sys, time
from pathlib import Path
target, n, marker, stage, *args = sys.argv[1:]
module_name, attr = target.split(":")
owner = importlib.import_module(module_name)
*path, name = attr.split(".")
for part in path:
    owner = getattr(owner, part)
real = getattr(owner, name)
calls = [0]
def held(*a, **k):
    calls[0] += 1
    if calls[0] == int(n):
        Path(marker).write_text("here")
        while True:
            time.sleep(1)
    return real(*a, **k)
setattr(owner, name, held)
sys.argv = [stage, *args]
runpy.run_module(stage, run_name="__main__", alter_sys=True)
"""
STEPS = {  # stage -> (what is held, the command)
    "generate": ("pipeline.priors.cache:PriorCache.save_image", ["pipeline.generate", "--params", "params.yaml"]),
    "extract": ("pipeline.features.store:FeatureStoreWriter.write_video",
                ["pipeline.extract", "rgb", "--params", "params.yaml"]),
    "train": ("pipeline.modelling.checkpoint:save_resume",
              ["pipeline.train", "--params", "params.yaml", "--no-progress"]),
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
       "TRANSFORMERS_OFFLINE": "1", "PYTHONHASHSEED": "0"}


def run_stage(root: Path, command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *command], cwd=root, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def kill_at(root: Path, stage: str, n: int) -> None:
    target, command = STEPS[stage]
    marker = root / f"{stage}.held"
    (root / "hold.py").write_text(HOLD)
    proc = subprocess.Popen([sys.executable, str(root / "hold.py"), target, str(n), str(marker), *command],
                            cwd=root, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{stage} ended before call {n} of {target}: {proc.communicate()[1][-3000:]}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def calls_of(stage: str, world: dict) -> int:
    """How often the uninterrupted run makes the held call. Training saves its resume state after its first and
    last epochs, and between them only every ``RESUME_EVERY_S``, far longer than this world's epochs."""
    return {"generate": world["classes"] * world["params"]["generate"]["k"], "extract": world["videos"],
            "train": 2}[stage]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny project (4 demo videos, 4 classes), prepared; then the uninterrupted reference run."""
    base = tmp_path_factory.mktemp("faults") / "base"
    videos = base / "cache" / "demo" / "videos"
    videos.mkdir(parents=True)
    demo = DemoConfig(seed=0, size=128, fps=4, min_duration=8.0, max_duration=9.0, second_class_prob=0.0)
    database = dict(make_video(videos, demo, subset, n)
                    for subset, n in (("training", 0), ("training", 1), ("training", 5), ("validation", 3)))
    atomic_write_json(base / "cache" / "demo" / "annotations.json", {"version": "test", "database": database})
    (base / "unseen.txt").write_text(UNSEEN + "\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"].update(unseen_list="unseen.txt")
    params["generate"].update(k=2, image_size=32)
    params["extract"].update(device="cpu", T=16)
    params["extract"]["frames"]["sample_fps"] = 2.0
    params["extract"]["clip"].update(model="grizal-tiny", pretrained=None, batch_size=8)
    params["model"].update(width=32, heads=2, vle_layers=1, ofe_layers=1, ft_layers=1, k=2)
    params["train"].update(epochs=4, batch_size=8, device="cpu")
    (base / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    old = Path.cwd()
    os.chdir(base)
    try:
        index, split = prepare(params["prepare"], Path("cache/prepare"))
    finally:
        os.chdir(old)
    reference = base.with_name("reference")
    shutil.copytree(base, reference)
    for command in (STEPS["generate"][1], STEPS["extract"][1], ["pipeline.extract", "flow", "--params",
                    "params.yaml"], ["pipeline.extract", "priors", "--params", "params.yaml"], STEPS["train"][1]):
        run_stage(reference, command)
    return {"base": base, "reference": reference, "params": params, "videos": len(index.videos),
            "classes": len(split.seen) + len(split.unseen)}


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.jsonl"}  # the manifest logs times and the killed attempt


def assert_same_store(a: Path, b: Path) -> None:
    one, other = open_store(a), open_store(b)
    assert one.complete_ids() == other.complete_ids()
    left, right = one.read_videos(one.complete_ids()), other.read_videos(other.complete_ids())
    for vid in left:
        assert left[vid][0].tobytes() == right[vid][0].tobytes() and left[vid][1].tobytes() == right[vid][1].tobytes()


@pytest.mark.parametrize("stage", ["generate", "extract", "train"])
def test_a_killed_stage_reruns_to_the_uninterrupted_result(world, stage, tmp_path):
    reference = world["reference"]
    run = tmp_path / "run"
    shutil.copytree(world["base"], run)
    if stage != "generate":  # the inputs the stage reads, as the reference made them
        shutil.copytree(reference / "cache" / "priors", run / "cache" / "priors")
    if stage == "train":
        shutil.copytree(reference / "cache" / "features", run / "cache" / "features")
    n = random.Random(f"{SEED}:{stage}").randint(1, calls_of(stage, world) - 1)
    kill_at(run, stage, n)
    run_stage(run, STEPS[stage][1])

    if stage == "generate":
        assert tree_bytes(run / "cache" / "priors") == tree_bytes(reference / "cache" / "priors"), f"killed at {n}"
    elif stage == "extract":
        assert_same_store(run / "cache" / "features" / "rgb.zarr", reference / "cache" / "features" / "rgb.zarr")
    else:
        mine = torch.load(run / "cache" / "train" / "model.pt", weights_only=True)
        theirs = torch.load(reference / "cache" / "train" / "model.pt", weights_only=True)
        state, expected = mine["model"], theirs["model"]
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[k], expected[k]) for k in state), f"killed at epoch call {n}"
    if stage == "generate":
        classes = json.loads((run / "cache" / "priors" / "priors.json").read_text())["classes"]
        assert len(classes) == world["classes"]
    if stage == "extract":
        assert not (run / "cache" / "features" / "rgb.zarr" / "failures.jsonl").read_text()
