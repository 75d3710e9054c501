"""`grizal localize` end to end: a checkpoint trained here on tiny demo-world videos through the stages' own
functions, then the command on a video it has not seen, twice (the second call must reuse the cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.apps.localize import app, localize
from pipeline.apps.timeline import timeline_figure, video_thumbnails
from pipeline.features.inputs import load_priors, load_videos, standardized
from pipeline.modelling.checkpoint import load_model
from pipeline.modelling.inference import model_probs

REPO = Path(__file__).resolve().parents[1]
UNSEEN = "circle slides right"  # the main class of validation video 3, unseen in the demo's split 0
FREE_TEXT = "a dog being bathed"


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world


def invoke(args: list[str], cwd: Path):
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, ["localize", *args])
    finally:
        os.chdir(old)


def group_mtimes(store: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (store / "videos").glob("*/zarr.json")}


def test_localize_twice_reuses_the_cache(world, monkeypatch):
    root, video = world["root"], world["video"]
    args = [str(video), "--action", UNSEEN, "--action", FREE_TEXT, "--action", f"  {UNSEEN} ",
            "--checkpoint", str(world["checkpoint"]), "--cache-dir", "lc", "--out", "out",
            "--thumbnails", "4"]
    first = invoke([*args, "--no-params"], root)
    assert first.exit_code == 0, first.output
    assert "features: extracted rgb+flow" in first.output
    assert "start (s)" in first.output and FREE_TEXT in first.output and "score" in first.output

    payload = json.loads((root / "out" / "segments.json").read_text())
    assert payload["version"] and list(payload["results"]) == ["demo_test_003"]
    found = payload["results"]["demo_test_003"]
    duration = world["index"].videos["demo_test_003"].duration
    assert found and {r["label"] for r in found} <= {UNSEEN, FREE_TEXT}
    for r in found:
        start, end = r["segment"]
        assert 0.0 <= start < end <= duration + 1e-6 and 0.0 < r["score"] <= 1.0
    assert [r["score"] for r in found] == sorted((r["score"] for r in found), reverse=True)
    with Image.open(root / "out" / "timeline.png") as image:
        image.load()
        assert image.format == "PNG" and image.width >= 1000 and image.height > 300
    stores = sorted((root / "lc").glob("encoders-*"))
    assert len(stores) == 1
    before = group_mtimes(stores[0] / "rgb.zarr")

    # Second call, params whose extract section matches the checkpoint: no decoding, no encoder even loaded.
    def must_not_run(*_args, **_kwargs):
        raise AssertionError("the cache should have made this unnecessary")

    monkeypatch.setattr("pipeline.apps.localize.extract_video", must_not_run)
    monkeypatch.setattr("pipeline.features.settings.extractors_from_stores", must_not_run)
    monkeypatch.setattr("pipeline.apps.timeline.VideoReader", must_not_run)
    second = invoke([*args, "--params", "params.yaml", "--out", "out2"], root)
    assert second.exit_code == 0, second.output
    assert "features: cached" in second.output and "0 encoded, 2 unchanged" in second.output
    assert json.loads((root / "out2" / "segments.json").read_text()) == payload
    assert group_mtimes(stores[0] / "rgb.zarr") == before

    # A new action on the same video: cached features, only the new action's priors are encoded.
    monkeypatch.undo()
    monkeypatch.setattr("pipeline.apps.localize.extract_video", must_not_run)
    third = invoke([str(video), "-a", "a cat sleeping", "--checkpoint", str(world["checkpoint"]),
                    "--cache-dir", "lc", "--out", "out3", "--no-params", "--thumbnails", "0"], root)
    assert third.exit_code == 0, third.output
    assert "features: cached" in third.output and "1 encoded, 0 unchanged" in third.output


def test_same_probabilities_as_the_evaluate_path(world, tmp_path):
    """localize on a video equals the stages' inputs for it (features from the extract stage's stores)."""
    result = localize(world["video"], [UNSEEN], world["checkpoint"], tmp_path / "out", tmp_path / "cache",
                      n_thumbnails=0)
    model, state = load_model(world["checkpoint"])
    vid = "demo_test_003"
    videos = load_videos(world["features"], [vid], {vid: world["index"].videos[vid].duration}, state["T"])
    priors = load_priors(world["features"], [UNSEEN])
    expected = model_probs(model, *standardized(videos, priors, state["feature_stats"]))[0, 0]
    assert result.times == pytest.approx(videos.times[0], abs=1e-3)
    # Equal up to bf16 rounding: the stage encoded frames in batches across videos, localize one video alone.
    assert np.abs(result.probs[0] - expected).max() < 0.05


def test_an_actions_segments_do_not_depend_on_the_other_actions(world, tmp_path, monkeypatch):
    """Asked alone or with others, an action gets the same curve and segments, even when params.yaml sets
    cross_class: geometric; only --cross-class makes the actions compete, and the figure plots what was cut."""
    import pipeline.apps.localize as localize_module
    from grizal.localization import probs_to_segments

    plotted = []
    real_write_timeline = localize_module.write_timeline

    def capture(path, title, duration, times, curves, segments, thumbnails=(), **kwargs):
        plotted.append({"times": times, "curves": curves, "segments": segments, **kwargs})
        return real_write_timeline(path, title, duration, times, curves, segments, thumbnails, **kwargs)

    monkeypatch.setattr(localize_module, "write_timeline", capture)
    params = {"cross_class": "geometric", "thresholds": [0.05, 0.1, 0.3]}

    def run(actions, name, cross_class="none"):
        settings = localize_module.Settings(params_path=Path("p.yaml"), localization=params, cross_class=cross_class)
        return localize(world["video"], actions, world["checkpoint"], tmp_path / name, tmp_path / "cache",
                        settings, top=100, n_thumbnails=0)

    def found(result, action):
        return [r for r in result.results if r["label"] == action]

    action = "circle rises"
    alone = run([action], "alone")
    together = run(["a bird flying", action, UNSEEN], "together")
    assert found(alone, action) and found(alone, action) == found(together, action)
    np.testing.assert_array_equal(alone.curves[0], together.curves[1])
    np.testing.assert_array_equal(together.curves, together.probs)  # geometric in params is not applied
    competing = run(["a bird flying", action, UNSEEN], "competing", cross_class="geometric")
    assert not np.array_equal(competing.curves, competing.probs)

    for result, figure in zip((alone, together, competing), plotted, strict=True):
        assert figure["thresholds"] == params["thresholds"]
        for c, name in enumerate(result.actions):
            np.testing.assert_array_equal(figure["curves"][name], result.curves[c])
            cut = probs_to_segments(figure["curves"][name], figure["times"], result.duration,
                                    **{**params, "cross_class": "none"})
            assert [tuple(round(x, 3) for x in s[:2]) for s in cut] == [tuple(r["segment"]) for r in
                                                                        found(result, name)]
            assert figure["segments"][name] == [(*r["segment"], r["score"]) for r in found(result, name)]
    assert plotted[2]["ylabel"] == "cross-class score" and plotted[0]["ylabel"] == "probability"


def test_an_action_without_priors_is_recorded_and_the_others_answered(world, tmp_path, monkeypatch):
    from fakes.fake_openai import FakeOpenAI

    from pipeline.apps.localize import Settings, segments_table

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdefghij")
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        server.script("chat", "refusal", "refusal", "refusal", match="bird")
        settings = Settings(generate={"backoff_s": 0.001, "max_retries": 1, "malformed_retries": 1},
                            text_backend="openai", image_backend="offline")
        result = localize(world["video"], ["a bird flying", UNSEEN], world["checkpoint"], tmp_path / "out",
                          tmp_path / "cache", settings, n_thumbnails=0)
    assert result.actions == [UNSEEN] and list(result.failed) == ["a bird flying"]
    assert "refus" in result.failed["a bird flying"]
    recorded = json.loads((tmp_path / "out" / "failed.json").read_text())
    assert recorded["failed"] == result.failed and recorded["asked"] == ["a bird flying", UNSEEN]
    assert {r["label"] for r in result.results} <= {UNSEEN}
    payload = json.loads((tmp_path / "out" / "segments.json").read_text())
    assert payload["results"]["demo_test_003"] == result.results
    assert any("failed: " in str(cell) for column in segments_table(result, 5).columns for cell in column._cells)


@pytest.mark.parametrize("case, message", [
    ("missing video", "missing.mp4: file not found"),
    ("undecodable", "not_a_video.mp4: cannot decode this video: cannot open as a video"),
    ("empty action", "--action: empty action text"),
    ("missing checkpoint", "nope.pt: checkpoint not found"),
    ("resume checkpoint", "checkpoint.pt: not a grizal checkpoint"),
    ("two params options", "--no-params: cannot be combined with --params"),
    ("other encoders", "extract.clip.model: 'ViT-B-32-quickgelu' in other.yaml, 'grizal-tiny' in the "),
])
def test_errors_are_one_line(world, case, message):
    root = world["root"]
    (root / "not_a_video.mp4").write_bytes(b"this is a text file, not a video\n" * 10)
    other = {"extract": {**world["extract"], "clip": {"model": "ViT-B-32-quickgelu", "pretrained": "openai"},
                         "flow": {"method": "dis"}}}
    (root / "other.yaml").write_text(yaml.safe_dump(other))
    video, action, checkpoint = str(world["video"]), "circle rises", str(world["checkpoint"])
    extra = ["--no-params"]
    if case == "missing video":
        video = "missing.mp4"
    elif case == "undecodable":
        video = "not_a_video.mp4"
    elif case == "empty action":
        action = "   "
    elif case == "missing checkpoint":
        checkpoint = "nope.pt"
    elif case == "resume checkpoint":
        checkpoint = str(world["checkpoint"].with_name("checkpoint.pt"))
    elif case == "two params options":
        extra = ["--no-params", "--params", "params.yaml"]
    else:
        extra = ["--params", "other.yaml"]
    result = invoke([video, "--action", action, "--checkpoint", checkpoint, "--cache-dir", "lc-errors",
                     *extra], root)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output
    if case == "other encoders":
        assert "extract.flow.method: 'dis' in other.yaml, 'farneback'" in lines[0]


def test_thumbnails_and_figure(world):
    video, duration = world["video"], world["index"].videos["demo_test_003"].duration
    thumbs = video_thumbnails(video, duration, 5, height=40)
    assert len(thumbs) == 5
    times = [t for t, _ in thumbs]
    assert times == sorted(times) and times == pytest.approx((np.arange(5) + 0.5) * duration / 5, abs=0.3)
    assert all(image.shape == (40, 40, 3) and image.dtype == np.uint8 for _, image in thumbs)
    t = np.linspace(0.5, duration - 0.5, 20)
    fig = timeline_figure("v", duration, t, {"a": np.full(20, 0.2), "b": np.full(20, 0.8)},
                          {"a": [(1.0, 3.0, 0.5)], "b": []}, thumbs)
    assert len(fig.axes) == 2  # curves and the thumbnail strip
    fig = timeline_figure("v", duration, t, {"a": np.full(20, 0.2)}, {}, (), thresholds=[0.3, 0.5])
    levels = [line.get_ydata()[0] for line in fig.axes[0].lines if line.get_linestyle() == "--"]
    assert levels == [0.3, 0.5]
    with pytest.raises(ValueError, match="3 probabilities for 20 times"):
        timeline_figure("v", duration, t, {"a": [0.1, 0.2, 0.3]}, {}, ())


def test_entry_points():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # `python -m pipeline.apps.cli localize ...` (a checkout that is not installed) is the `grizal` console script.
    done = subprocess.run([sys.executable, "-m", "pipeline.apps.cli", "localize", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--action" in done.stdout and "--checkpoint" in done.stdout
    group = CliRunner().invoke(app, ["--help"])
    assert group.exit_code == 0 and "localize" in group.output
