"""Shared fixtures. `tiny_world` runs the real stages (prepare, generate, extract, train) on four short demo-world
videos once per test session, for the tests of training, evaluation and `grizal localize`."""

import os
from pathlib import Path

import pytest
import torch
import yaml
from support.custom_world import custom_template
from support.quickstart import quickstart

from pipeline.common import atomic_write_json
from pipeline.data.build import prepare
from pipeline.data.demo import ACTORS_FILE, DemoConfig, render_video, write_actor_plans
from pipeline.data.splits import Split
from pipeline.features.extraction import run_feature_extraction
from pipeline.features.priors import PriorEncoder, run_priors
from pipeline.features.settings import build_clip, build_extractors, extract_config
from pipeline.features.store import Shard
from pipeline.modelling.fit import TrainConfig, train
from pipeline.priors.config import build_config
from pipeline.priors.generation import run as generate_run

# A stray hub call stalls ~46 s before failing; tests never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


EXTRACT = {
    "device": "cpu",
    "T": 32,
    "clip": {"model": "grizal-tiny", "pretrained": None, "seed": 0, "precision": "auto", "batch_size": 32},
    "frames": {"sample_fps": 2.0, "min_frames": 2},
    "flow": {"method": "farneback", "max_side": 64, "batch_size": 8},
    "priors": {"name_template": "a video of a {}"},
}
MODEL = {"width": 32, "heads": 2, "vle_layers": 1, "ofe_layers": 1, "ft_layers": 1, "k": 2, "dropout": 0.0}
UNSEEN = "circle slides right"  # the main class of validation video 3, unseen in the demo's split 0


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Two OpenMP threads on two shared cores spin against each other and the test's own subprocesses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory, one_torch_thread):
    """prepare -> generate -> extract -> train on three demo videos, as the DVC stages would."""
    root = tmp_path_factory.mktemp("localize")
    demo = DemoConfig(seed=0, size=128, fps=8, min_duration=14.0, max_duration=15.0, second_class_prob=0.0)
    (root / "videos").mkdir()
    rendered = [render_video(root / "videos", demo, subset, n)
                for subset, n in (("training", 0), ("training", 1), ("training", 5), ("validation", 3))]
    database = {vid: entry for vid, entry, _plan in rendered}
    atomic_write_json(root / "annotations.json", {"version": "test", "database": database})
    write_actor_plans(root / ACTORS_FILE, demo, {vid: plan for vid, _entry, plan in rendered})
    (root / "unseen.txt").write_text(UNSEEN + "\n")
    index, split = prepare({"dataset": "demo", "annotations": str(root / "annotations.json"),
                        "video_dir": str(root / "videos"), "protocol": "open",
                        "unseen_list": str(root / "unseen.txt")}, root / "prepare")
    assert split == Split.load(root / "prepare" / "split.json")
    assert split.test_videos == ["demo_test_003"] and split.unseen == [UNSEEN]
    assert len(split.seen) == 3

    generate_cfg = build_config(None, "test", {"out": root / "priors", "k": MODEL["k"]})
    assert generate_run(generate_cfg, [*split.seen, UNSEEN]) == 0
    cfg = extract_config({"extract": EXTRACT})
    features = root / "features"
    ex = build_extractors(cfg, ("rgb", "flow"), "test")
    videos = {vid: Path(entry.path) for vid, entry in index.videos.items()}
    stores = {"rgb": features / "rgb.zarr", "flow": features / "flow.zarr"}
    run_feature_extraction(videos, stores, ex, EXTRACT["T"], shard=Shard(), rebuild=True,
                           max_failure_fraction=0.0)
    run_priors(root / "priors" / "priors.json", features / "priors.zarr", PriorEncoder.of(build_clip(cfg, "test")),
               EXTRACT["priors"]["name_template"])
    checkpoint = train(index, split, features, MODEL, {}, TrainConfig(epochs=2, batch_size=8, device="cpu"),
                       root / "train", progress=False, log=lambda *_: None)
    (root / "params.yaml").write_text(yaml.safe_dump({"extract": EXTRACT}))
    return {"root": root, "index": index, "features": features, "checkpoint": checkpoint, "extract": EXTRACT,
            "split": split, "model": MODEL,
            "video": Path(index.videos["demo_test_003"].path)}


@pytest.fixture(scope="session")
def custom_world_template(tmp_path_factory):
    """The README's own-videos data set with its feature stores made by `dvc repro`, once per session; the
    workflow tests each take a copy (`support.custom_world.custom_project`)."""
    return custom_template(tmp_path_factory.mktemp("custom_template"))


@pytest.fixture(scope="session")
def quickstart_project(tmp_path_factory):
    """The README's quick start (`make setup`, `grizal check`, `make repro`) on a seconds-long demo world, once per
    session; tests that change it take a copy (`support.project_copy.copy_prepared`)."""
    return quickstart(tmp_path_factory.mktemp("quickstart"))
