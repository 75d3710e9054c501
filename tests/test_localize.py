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
from support.cli import invoke_in
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
    return invoke_in(cwd, app, ["localize", *args])


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
    assert "est. cost" in first.output and "classes, k=2: texts from" in first.output  # priors made: what they cost

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
    assert "est. cost" not in second.output and "classes, k=" not in second.output  # nothing made, nothing to pay
    assert json.loads((root / "out2" / "segments.json").read_text()) == payload
    assert group_mtimes(stores[0] / "rgb.zarr") == before

    # A new action on the same video: cached features, only the new action's priors are encoded.
    monkeypatch.undo()
    monkeypatch.setattr("pipeline.apps.localize.extract_video", must_not_run)
    third = invoke([str(video), "-a", "a cat sleeping", "--checkpoint", str(world["checkpoint"]),
                    "--cache-dir", "lc", "--out", "out3", "--no-params", "--thumbnails", "0"], root)
    assert third.exit_code == 0, third.output
    assert "features: cached" in third.output and "1 encoded, 0 unchanged" in third.output
    assert "est. cost" in third.output and "1 classes, k=2" in third.output


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
    ("corrupt", "corrupt.mp4: cannot decode this video: cannot open as a video"),
    ("empty action", "--action: empty action text"),
    ("overlong action", "--action: an action of 2849 characters; describe it in at most 200"),
    ("missing checkpoint", "nope.pt: checkpoint not found"),
    ("resume checkpoint", "checkpoint.pt: not a grizal checkpoint"),
    ("two params options", "--no-params: cannot be combined with --params"),
    ("other encoders", "extract.clip.model: 'ViT-B-32-quickgelu' in other.yaml, 'grizal-tiny' in the "),
])
def test_errors_are_one_line(world, case, message, monkeypatch):
    root = world["root"]
    (root / "not_a_video.mp4").write_bytes(b"this is a text file, not a video\n" * 10)
    (root / "corrupt.mp4").write_bytes(world["video"].read_bytes()[:4000])  # the head of a real video
    if case in ("missing video", "undecodable", "corrupt", "empty action", "overlong action"):
        def must_not_load(*_args, **_kwargs):
            raise AssertionError("the model loaded before the input was checked")

        monkeypatch.setattr("pipeline.apps.localize.load_model", must_not_load)
    other = {"extract": {**world["extract"], "clip": {"model": "ViT-B-32-quickgelu", "pretrained": "openai"},
                         "flow": {"method": "dis"}}}
    (root / "other.yaml").write_text(yaml.safe_dump(other))
    video, action, checkpoint = str(world["video"]), "circle rises", str(world["checkpoint"])
    extra = ["--no-params"]
    if case == "missing video":
        video = "missing.mp4"
    elif case == "undecodable":
        video = "not_a_video.mp4"
    elif case == "corrupt":
        video = "corrupt.mp4"
    elif case == "empty action":
        action = "   "
    elif case == "overlong action":
        action = ("a person " * 400)[:2849]
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


@pytest.mark.parametrize("n_actions, chars, title", [
    (1, 200, "my_video.mp4 (30.0 s)"), (4, 60, "x" * 300), (10, 150, "my_video.mp4 (30.0 s)"), (3, 8, "short")])
def test_the_legend_never_covers_the_title(n_actions, chars, title):
    """Long actions are cut in the legend, and its columns wrap into rows above the plot, beside the title."""
    t = np.linspace(0.0, 10.0, 20)
    curves = {(f"{i} a dog being bathed in a tub " * 20)[:chars]: np.full(20, 0.2) for i in range(n_actions)}
    fig = timeline_figure(title, 10.0, t, curves, {})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    title_box = ax._left_title.get_window_extent(renderer)  # the title of loc="left"
    assert title_box.width > 0 and not legend.overlaps(title_box)
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.x1 and legend.y1 <= fig.bbox.y1  # wholly on the figure
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(labels) == n_actions and all(len(label) <= 32 for label in labels)
    assert all(label.endswith("…") for label in labels) == (chars > 32)


def test_no_segment_says_where_the_curve_peaked(world, tmp_path):
    from rich.console import Console

    from pipeline.apps.localize import Settings, segments_table

    settings = Settings(localization={"thresholds": [0.995, 0.999]})
    result = localize(world["video"], [UNSEEN], world["checkpoint"], tmp_path / "out", tmp_path / "cache", settings,
                      n_thumbnails=0)
    assert result.results == []
    peak, at = result.peaks[UNSEEN]
    assert peak == pytest.approx(float(result.curves[0].max())) and peak < 0.995
    assert at == pytest.approx(float(result.times[int(result.curves[0].argmax())]))
    reason = result.no_segment(UNSEEN)
    assert reason == f"no segment: peak {peak:.3f} at {at:.1f} s, below the lowest threshold 0.995"
    console = Console(width=200, record=True)
    console.print(segments_table(result, 5))
    assert reason in console.export_text()
    assert json.loads((tmp_path / "out" / "call.json").read_text())["peaks"][UNSEEN] == [peak, at]


def test_the_cross_class_note_only_when_it_would_matter(world, tmp_path):
    import io

    from rich.console import Console

    from pipeline.apps.localize import Settings

    def notes(actions):
        buffer = io.StringIO()
        settings = Settings(params_path=Path("p.yaml"), localization={"cross_class": "geometric"})
        localize(world["video"], actions, world["checkpoint"], tmp_path / "out", tmp_path / "cache", settings,
                 n_thumbnails=0, console=Console(file=buffer, width=80))
        return [line for line in buffer.getvalue().splitlines() if line.startswith("note:")]

    assert notes([UNSEEN]) == []  # one action: nothing to compete with
    assert notes([UNSEEN, FREE_TEXT]) == ["note: localization.cross_class: geometric in p.yaml is not applied here; "
                                          "--cross-class geometric makes the actions asked compete"]


def test_the_checkpoint_says_what_it_was_trained_on(world, tmp_path):
    import io

    from rich.console import Console

    from pipeline.apps.checkpoint_info import checkpoint_info

    _, state = load_model(world["checkpoint"])
    assert state["trained_on"]["dataset"] == "demo" and state["trained_on"]["protocol"] == "open_custom"
    info = checkpoint_info(state)
    assert info.demo_only and info.mismatch_warning(world["video"]) is None  # a demo-world video
    line = info.line(world["checkpoint"])
    assert line.startswith(f"checkpoint {world['checkpoint']}: trained on demo (protocol open_custom")
    assert "3 training classes; 2 epochs" in line and "frame encoder grizal-tiny (random-init seed 0)" in line
    # A checkpoint saved before trained_on existed: recognised by its classes.
    old = checkpoint_info({k: v for k, v in state.items() if k != "trained_on"})
    assert old.dataset == "demo" and "not recorded" in old.line(Path("m.pt"))
    real = checkpoint_info({**state, "trained_on": {"dataset": "thumos14"},
                            "encoders": {**state["encoders"], "rgb": {**state["encoders"]["rgb"],
                                                                      "encoder_model": "ViT-B-32"}}})
    assert not real.demo_only and real.mismatch_warning(Path("my_video.mp4")) is None

    other = tmp_path / "my_video.mp4"
    other.write_bytes(world["video"].read_bytes())
    buffer = io.StringIO()
    localize(other, [UNSEEN], world["checkpoint"], tmp_path / "out", tmp_path / "cache", n_thumbnails=0,
             console=Console(file=buffer, width=80))
    lines = buffer.getvalue().splitlines()
    assert lines[0] == line
    warning = [x for x in lines if x.startswith("warning: my_video.mp4 is not a demo-world video")]
    assert len(warning) == 1 and "meaningless" in warning[0] and "real CLIP" in warning[0]


def test_a_cached_call_loads_no_encoder_module(world, tmp_path):
    """A second call on the same video imports neither open_clip nor the flow module (nor decodes the video
    beyond its first frame), with or without a params file that names the checkpoint's encoders."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    script = ("import sys, atexit\n"
              "atexit.register(lambda: print('LOADED', sorted(m for m in ('open_clip', 'grizal.encoders.flow', "
              "'grizal.encoders.clip', 'cv2') if m in sys.modules)))\n"
              "from pipeline.apps.cli import main\nsys.argv[0] = 'grizal'\nmain()\n")
    args = [sys.executable, "-c", script, "localize", str(world["video"]), "-a", UNSEEN, "--checkpoint",
            str(world["checkpoint"]), "--cache-dir", str(tmp_path / "cache"), "--thumbnails", "2"]
    loaded = []
    for extra in (["--no-params"], ["--params", str(world["root"] / "params.yaml")]):
        done = subprocess.run([*args, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        loaded.append(done.stdout.strip().splitlines()[-1])
    assert "'open_clip'" in loaded[0]  # the first call encodes the video
    assert loaded[1] == "LOADED []"


def test_entry_points():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # `python -m pipeline.apps.cli localize ...` (a checkout that is not installed) is the `grizal` console script.
    done = subprocess.run([sys.executable, "-m", "pipeline.apps.cli", "localize", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--action" in done.stdout and "--checkpoint" in done.stdout
    group = CliRunner().invoke(app, ["--help"])
    assert group.exit_code == 0 and "localize" in group.output


def test_the_readme_localize_workflows(world, tmp_path):
    """The README's `grizal localize` commands exactly as printed, in a folder laid out as after `make repro`:
    `.venv/bin/grizal` (the console script, here a wrapper running the same entry point from this checkout),
    ./params.yaml, cache/train/model.pt (the tiny demo checkpoint) and my_video.mp4 (a copy of a demo video
    under a name that is not the demo world's: the command must warn that the answer is meaningless)."""
    import shutil

    from support.doc_workflows import commands

    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "grizal").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pipeline.apps.cli "$@"\n')
    (bin_dir / "grizal").chmod(0o755)
    shutil.copy(world["video"], tmp_path / "my_video.mp4")
    (tmp_path / "cache" / "train").mkdir(parents=True)
    shutil.copy(world["checkpoint"], tmp_path / "cache" / "train" / "model.pt")
    shutil.copy(world["root"] / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}

    def run(command: str) -> subprocess.CompletedProcess:
        done = subprocess.run(command, shell=True, executable="/bin/bash", cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, command + "\n" + done.stdout[-2000:] + done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        return done

    def folders() -> set[Path]:
        return {p.parent for p in (tmp_path / "localized" / "my_video").glob("*/segments.json")}

    quickstart = commands("localize-quickstart")
    assert quickstart == ['.venv/bin/grizal localize my_video.mp4 --action "a dog being bathed" --action "skiing"']
    done = run(quickstart[0])
    lines = done.stderr.splitlines()
    assert lines[0].startswith("checkpoint cache/train/model.pt: trained on demo (protocol open_custom")
    assert lines[1].startswith("warning: my_video.mp4 is not a demo-world video") and "meaningless" in lines[1]
    assert "a dog being bathed" in done.stdout and "skiing" in done.stdout
    (first,) = folders()
    assert first.name.startswith("a_dog_being_bathed+1-")
    call = json.loads((first / "call.json").read_text())
    assert call["actions"] == ["a dog being bathed", "skiing"] and set(call["peaks"]) == set(call["actions"])
    kept = (first / "segments.json").read_bytes()

    workflow = commands("localize")
    assert len(workflow) == 2 and all(c.startswith("grizal localize my_video.mp4 ") for c in workflow)
    seen = {first}
    for command in workflow:
        done = run(command)
        assert "features: cached" in done.stderr  # the quick start's call extracted them
        new = folders() - seen
        assert len(new) == 1, "each call writes its own folder"
        seen |= new
        assert json.loads((new.pop() / "segments.json").read_text())["results"].keys() == {"my_video"}
    assert (first / "segments.json").read_bytes() == kept  # not overwritten by the later calls
