"""The extract stage end to end on real mp4 files: rgb, flow, priors, bad videos, resume, shards, check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from support.cli import invoke_in
from test_video import make_bad_videos, make_video

from pipeline.common import UserError
from pipeline.extract import app
from pipeline.features.engine import extract_video, extract_video_features
from pipeline.features.settings import build_extractors, extract_config, extractors_from_stores, store_attrs
from pipeline.features.store import open_store, read_failures, read_priors
from pipeline.features.video import VideoError

REPO = Path(__file__).resolve().parents[1]
GOOD = {"walk_a": 20, "walk_b": 16, "run_c": 24, "jump_d": 12, "swim_e": 18, "sit_f": 14}
PARAMS = {
    "extract": {
        "device": "cpu",
        "T": 32,
        "max_failure_fraction": 0.6,
        "clip": {"model": "grizal-tiny", "pretrained": None, "seed": 0, "precision": "auto", "batch_size": 16},
        "frames": {"sample_fps": 5},
        "flow": {"method": "farneback", "max_side": 64, "batch_size": 4},
        "priors": {"name_template": "a video of a {}"},
    }
}




@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A project folder: good and bad videos, an index naming them all, params.yaml."""
    root = tmp_path_factory.mktemp("world")
    videos = {}
    for i, (name, frames) in enumerate(GOOD.items()):
        size = (48, 64) if i == 2 else (64, 48)  # one portrait video: flow batches hold one frame size
        videos[name] = make_video(root / "videos" / f"{name}.mp4", frames=frames, width=size[0], height=size[1])
    bad = make_bad_videos(root / "videos" / "bad")
    for name, (path, _) in bad.items():
        videos[name] = path
    index = {"schema": 1, "dataset": "custom", "classes": [], "videos": {
        vid: {"path": str(path.relative_to(root)), "duration": 2.0, "fps": 10.0, "subset": "test", "segments": []}
        for vid, path in videos.items()}}
    (root / "cache" / "prepare").mkdir(parents=True)
    (root / "cache" / "prepare" / "index.json").write_text(json.dumps(index))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return root


def invoke(args, cwd):
    return invoke_in(cwd, app, args)


def group_mtimes(store: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (store / "videos").glob("*/zarr.json")}


def test_rgb_and_flow_stages(world):
    result = invoke(["rgb", "--params", "params.yaml"], world)
    assert result.exit_code == 0, result.output
    rgb = open_store(world / "cache/features/rgb.zarr")
    assert rgb.complete_ids() == sorted(GOOD)
    assert rgb.attrs["encoder"] == "grizal-tiny (random-init seed 0)" and rgb.attrs["sample_fps"] == 5
    assert rgb.attrs["dim"] == 128 and rgb.attrs["T"] == 32 and len(rgb.attrs["weights_sha256"]) == 64
    # Every bad video is one line in the manifest with its reason; nothing of it is in the store.
    failures = read_failures(rgb.path)
    for name, (_, word) in make_bad_videos(world / "scratch").items():
        assert word in failures[name]["reason"], failures[name]
    features = rgb.read_videos(sorted(GOOD))
    for name, frames in GOOD.items():
        f, t = features[name]
        assert f.shape == ((frames + 1) // 2, 128)  # 10 fps sampled at 5 fps
        assert t == pytest.approx(np.arange(f.shape[0]) * 0.2)
        assert np.isfinite(f).all() and np.abs(f).sum() > 0
        assert rgb.video_attrs()[name]["duration"] == pytest.approx(frames / 10)

    result = invoke(["flow", "--params", "params.yaml"], world)
    assert result.exit_code == 0, result.output
    flow = open_store(world / "cache/features/flow.zarr")
    assert flow.attrs["flow_method"] == "farneback" and flow.attrs["flow"]["max_side"] == 64
    assert flow.attrs["weights_sha256"] == rgb.attrs["weights_sha256"]
    flows = flow.read_videos(sorted(GOOD))
    for name in GOOD:
        assert flows[name][0].shape[0] == features[name][0].shape[0] - 1
        assert flows[name][1] == pytest.approx(features[name][1][1:])  # stamped at the later frame

    # The single-video API gives the same features as the batched stage.
    cfg = extract_config(PARAMS)
    ex = build_extractors(cfg, ("rgb", "flow"), "test")
    one = extract_video_features(world / "videos" / "run_c.mp4", ex)
    # Equal up to a bf16 rounding step: the kernels may differ with the batch size.
    assert np.allclose(one["rgb"][0], features["run_c"][0], atol=1e-2)
    assert np.allclose(one["flow"][0], flows["run_c"][0], atol=1e-2)
    assert np.array_equal(one["rgb"][1], features["run_c"][1])
    with pytest.raises(VideoError, match="empty"):
        extract_video(world / "videos" / "bad" / "zero_bytes.mp4", ex)

    # `grizal localize` rebuilds the encoders from the stores' attributes and gets the same features.
    rebuilt = extractors_from_stores(rgb.attrs, flow.attrs, device="cpu")
    again = extract_video(world / "videos" / "walk_b.mp4", rebuilt)
    assert np.allclose(again.features["rgb"][0], features["walk_b"][0], atol=1e-2)
    assert np.allclose(again.features["flow"][0], flows["walk_b"][0], atol=1e-2)
    assert again.summary.duration == pytest.approx(1.6)
    tampered = json.loads(json.dumps(rgb.attrs))
    tampered["settings"]["clip"]["weights_sha256"] = "0" * 64
    with pytest.raises(UserError, match="differ from those the stored features were made with"):
        extractors_from_stores(tampered)

    # A rerun skips complete videos and rewrites nothing.
    before = group_mtimes(rgb.path)
    result = invoke(["rgb", "--params", "params.yaml"], world)
    assert result.exit_code == 0 and "6 already complete" in result.output
    assert group_mtimes(rgb.path) == before

    # Above the allowed failure fraction the stage fails, naming the manifest.
    strict = {"extract": {**PARAMS["extract"], "max_failure_fraction": 0.2}}
    (world / "strict.yaml").write_text(yaml.safe_dump(strict))
    result = invoke(["rgb", "--params", "strict.yaml"], world)
    assert result.exit_code == 1 and "more than max_failure_fraction" in result.output
    result = invoke(["check", "cache/features", "--max-failure-fraction", "0.6"], world)
    assert result.exit_code == 0, result.output
    assert "7 failed" in result.output


def test_shards_together_equal_one_run(world):
    # Each shard judges only its own share of bad videos; the check judges the whole.
    shard_params = {"extract": {**PARAMS["extract"], "out": {"rgb": "shards/rgb.zarr"}, "max_failure_fraction": 1}}
    (world / "shards.yaml").write_text(yaml.safe_dump(shard_params))
    assert invoke(["rgb", "--params", "shards.yaml", "--shard", "0/2"], world).exit_code == 0
    result = invoke(["check", "shards/rgb.zarr", "--max-failure-fraction", "0.6"], world)
    assert result.exit_code == 1 and "missing" in result.output  # only half is there yet
    assert invoke(["rgb", "--params", "shards.yaml", "--shard", "1/2"], world).exit_code == 0
    assert invoke(["check", "shards/rgb.zarr", "--max-failure-fraction", "0.6"], world).exit_code == 0
    assert (world / "shards/rgb.zarr/failures.shard-0-of-2.jsonl").is_file()
    sharded = open_store(world / "shards/rgb.zarr")
    if not (world / "cache/features/rgb.zarr").exists():
        assert invoke(["rgb", "--params", "params.yaml"], world).exit_code == 0
    whole = open_store(world / "cache/features/rgb.zarr")
    assert sharded.complete_ids() == whole.complete_ids()
    assert set(read_failures(sharded.path)) == set(read_failures(whole.path))
    a, b = sharded.read_videos(sharded.complete_ids()), whole.read_videos(whole.complete_ids())
    for vid in a:
        assert np.array_equal(a[vid][1], b[vid][1])
        assert np.allclose(a[vid][0], b[vid][0], atol=1e-2)


def test_killed_run_resumes(tmp_path):
    videos = tmp_path / "videos"
    for i in range(8):
        make_video(videos / f"clip_{i}.mp4", frames=60)
    params = {"extract": {**PARAMS["extract"], "frames": {"sample_fps": None}, "clip": {
        **PARAMS["extract"]["clip"], "batch_size": 8}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    store = tmp_path / "out" / "rgb.zarr"
    command = [sys.executable, "-m", "pipeline.extract", "--videos", str(videos), "--out", str(tmp_path / "out"),
               "--params", str(tmp_path / "params.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def completed() -> list[str]:
        done = []
        for meta in (store / "videos").glob("*/zarr.json"):
            try:
                if json.loads(meta.read_text())["attributes"].get("complete"):
                    done.append(meta.parent.name)
            except (OSError, ValueError, KeyError):
                pass
        return done

    deadline = time.time() + 120
    while not completed() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    first = completed()
    assert 1 <= len(first) < 8
    before = {k: v for k, v in group_mtimes(store).items() if k in first}
    result = invoke(["videos", "--videos", str(videos), "--out", str(tmp_path / "out"), "--params",
                     str(tmp_path / "params.yaml")], tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{len(first)} already complete" in result.output
    assert open_store(store).complete_ids() == [f"clip_{i}" for i in range(8)]
    assert {k: v for k, v in group_mtimes(store).items() if k in first} == before
    features = open_store(store).read_videos([f"clip_{i}" for i in range(8)])
    assert all(f.shape == (60, 128) for f, _ in features.values())


def test_broken_links_and_folders_named_like_videos_are_recorded(tmp_path):
    videos = tmp_path / "videos"
    make_video(videos / "good_a.mp4", frames=12)
    make_video(videos / "good_b.mp4", frames=12)
    (videos / "broken.mp4").symlink_to(tmp_path / "gone.mp4")
    (videos / "folder.mp4").mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    result = invoke(["videos", "--videos", str(videos), "--out", str(tmp_path / "out"), "--params",
                     str(tmp_path / "params.yaml")], tmp_path)
    assert result.exit_code == 0, result.output
    failures = read_failures(tmp_path / "out" / "rgb.zarr")
    assert sorted(failures) == ["broken", "folder"]
    assert failures["broken"]["reason"] == "file not found" and failures["folder"]["reason"] == "not a regular file"
    assert open_store(tmp_path / "out" / "rgb.zarr").complete_ids() == ["good_a", "good_b"]


def test_raft_flow_through_the_engine(world, tmp_path):
    params = {"extract": {**PARAMS["extract"], "flow": {"method": "raft_small", "raft_weights": None,
                                                        "num_flow_updates": 1, "max_side": 64, "batch_size": 4}}}
    cfg = extract_config(params)
    ex = build_extractors(cfg, ("flow",), "test")
    flows = {}
    for name in ("jump_d", "run_c"):  # landscape and portrait: two RAFT frame sizes
        flows[name] = extract_video_features(world / "videos" / f"{name}.mp4", ex)["flow"]
    assert flows["jump_d"][0].shape == (5, 128) and flows["run_c"][0].shape == (11, 128)
    assert ex.flow.frame_size(64, 48) == (168, 128)
    rebuilt = extractors_from_stores(store_attrs("rgb", ex, 32), store_attrs("flow", ex, 32), device="cpu")
    assert rebuilt.flow.weights_sha256 == ex.flow.weights_sha256
    assert rebuilt.flow.spec.num_flow_updates == 1 and rebuilt.kinds == ("rgb", "flow")


def test_priors_stage(world):
    priors = world / "cache" / "priors"
    (priors / "images").mkdir(parents=True)
    classes = {}
    for c, name in enumerate(("circle rises", "square/slides left")):
        images = []
        for j in range(2):
            rel = f"images/{c}_{j}.png"
            Image.fromarray(np.full((40, 50, 3), 60 * c + 20 * j, np.uint8)).save(priors / rel)
            images.append(rel)
        classes[name] = {"texts": [f"a {name} slowly", f"the {name} in a video {c}"], "images": images}
    (priors / "priors.json").write_text(json.dumps({"k": 2, "classes": classes}))
    result = invoke(["priors", "--params", "params.yaml"], world)
    assert result.exit_code == 0, result.output
    assert "2 encoded" in result.output
    got = read_priors(world / "cache/features/priors.zarr", list(classes))
    for name in classes:
        p = got[name]
        k, S, E = p["joint"].shape
        assert (k, E) == (2, 128) and p["joint_mask"].shape == (2, S) and p["token_type"].shape == (2, S)
        assert p["token_type"][:, -65:].min() == 1 and p["name_embedding"].shape == (128,)
        assert p["text_embedding"].shape == (2, 128) and p["image_embedding"].shape == (2, 128)
        assert np.linalg.norm(p["image_embedding"], axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    classes["circle rises"]["texts"][0] = "a circle going up"
    (priors / "priors.json").write_text(json.dumps({"k": 2, "classes": classes}))
    result = invoke(["priors", "--params", "params.yaml"], world)
    assert result.exit_code == 0 and "1 encoded, 1 unchanged" in result.output
    classes["circle rises"]["images"][0] = "images/missing.png"
    (priors / "priors.json").write_text(json.dumps({"k": 2, "classes": classes}))
    result = invoke(["priors", "--params", "params.yaml"], world)
    assert result.exit_code == 2 and "missing.png: prior image of class 'circle rises' not found" in result.output


@pytest.mark.parametrize("change, message", [
    ({"frames": {"sample_fps": -1}}, "extract.frames.sample_fps: expected a number >= 0.001 or null, got -1"),
    ({"clip": {"model": "ViT-Q-1"}}, "extract.clip: unknown open_clip model 'ViT-Q-1'"),
    ({"flow": {"method": "optical"}}, "extract.flow.method: expected one of farneback, dis, raft_small"),
    ({"clip": {"batch_size": 0}}, "extract.clip.batch_size: expected an integer >= 1, got 0"),
])
def test_bad_params_are_one_line_errors(world, change, message):
    merged = json.loads(json.dumps(PARAMS))
    for key, value in change.items():
        merged["extract"][key] = {**merged["extract"].get(key, {}), **value}
    (world / "bad.yaml").write_text(yaml.safe_dump(merged))
    result = invoke(["flow", "--params", "bad.yaml"], world)
    assert result.exit_code == 2
    assert f"error: bad.yaml: {message}" in result.output
    assert "Traceback" not in result.output


def test_standalone_errors(tmp_path):
    result = invoke(["--videos", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")], tmp_path)
    assert result.exit_code == 2 and "no such file or directory" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke(["videos", "--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "out")], tmp_path)
    assert result.exit_code == 2 and "no video files" in result.output
    result = invoke(["--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--model", "ViT-B-32"],
                    tmp_path)
    assert result.exit_code == 2 and "also give --pretrained" in result.output
