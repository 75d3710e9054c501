"""Storage damage through the real readers: a flipped byte, a truncated or deleted chunk and a broken group are
named by every reader and by `extract check`, and rerunning extraction repairs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from support.cli import invoke_in
from test_extract import PARAMS
from test_store import attrs, prior_arrays, video
from test_video import make_video

from pipeline.common import UserError
from pipeline.extract import app
from pipeline.features.store import (
    FeatureStoreWriter,
    PriorsStoreWriter,
    check_feature_store,
    check_priors_store,
    open_store,
    read_priors,
    settings_sha256,
)

DAMAGE = ["flip", "truncate", "delete", "group"]
CLASSES = ["jump", "high/jump", "swim"]


def damage(group: Path, array: str, how: str) -> None:
    """Damage one array of a group the way a disk, a copy or a person would."""
    chunk = next(p for p in (group / array / "c").rglob("*") if p.is_file())
    if how == "flip":
        raw = bytearray(chunk.read_bytes())
        raw[len(raw) // 3] ^= 0x40
        chunk.write_bytes(bytes(raw))
    elif how == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:-7])
    elif how == "delete":
        chunk.unlink()
    else:
        meta = group / "zarr.json"
        meta.write_bytes(meta.read_bytes()[: len(meta.read_bytes()) // 2])


def invoke(args: list[str], cwd: Path):
    return invoke_in(cwd, app, args)


def frame_store(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    data = {f"v{i}": video(3 + i, seed=i) for i in range(3)}
    with FeatureStoreWriter(path, attrs()) as writer:
        for vid, (f, t) in data.items():
            writer.write_video(vid, f, t, {"duration": 10.0})
        writer.set_expected(data)
    return data


def priors_store(path: Path) -> None:
    settings = {"kind": "priors", "joint_unit": "concat"}
    writer = PriorsStoreWriter(path, {"kind": "priors", "dim": 4, "k": 2, "settings": settings,
                                      "settings_sha256": settings_sha256(settings)})
    for i, name in enumerate(CLASSES):
        # all-zero token types and all-true masks: chunks equal to a fill value are written too
        writer.write_class(name, {**prior_arrays(seed=i), "token_type": np.zeros((2, 8), np.int8)}, "h")
    writer.set_classes(CLASSES)
    writer.lock.release()


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("array", ["features", "timestamps"])
def test_frame_store_damage_is_named_by_every_reader(tmp_path, how, array):
    path = tmp_path / "rgb.zarr"
    frame_store(path)
    assert check_feature_store(path).ok(0.0)
    damage(path / "videos" / "v1", array, how)
    store = open_store(path)
    if how == "group":  # a video whose group metadata is broken is not complete: extraction writes it again
        assert "v1" not in store.complete_ids()
    with pytest.raises(UserError, match=r"1 video\(s\) damaged, e.g. v1: damaged: ") as err:
        store.read_videos(["v0", "v1", "v2"])
    assert "\n" not in str(err.value)
    report = check_feature_store(path)
    assert list(report.invalid) == ["v1"] and not report.missing and not report.ok(1.0)
    result = invoke(["check", str(path)], tmp_path)
    assert result.exit_code != 0 and "v1" in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("array", ["joint", "token_type"])
def test_priors_store_damage_is_named_by_every_reader(tmp_path, how, array):
    path = tmp_path / "priors.zarr"
    priors_store(path)
    assert check_priors_store(path).ok(0.0)
    assert read_priors(path, CLASSES)["jump"]["token_type"].shape == (2, 8)
    damage(path / "classes" / "swim", array, how)
    with pytest.raises(UserError, match="'swim'|\\['swim'\\]") as err:
        read_priors(path, CLASSES)
    assert "\n" not in str(err.value)
    report = check_priors_store(path)
    assert not report.ok(0.0) and "swim" in (list(report.invalid) + report.missing)
    assert report.complete == ["high/jump", "jump"]
    result = invoke(["check", str(path)], tmp_path)
    assert result.exit_code != 0 and "swim" in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("how", DAMAGE)
def test_rerunning_extraction_repairs_the_damage(tmp_path, how):
    videos = tmp_path / "videos"
    for i in range(2):
        make_video(videos / f"clip_{i}.mp4", frames=12 + 4 * i)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    out = tmp_path / "out"
    args = ["videos", "--videos", str(videos), "--out", str(out), "--params", str(tmp_path / "params.yaml")]
    assert invoke(args, tmp_path).exit_code == 0
    store = out / "rgb.zarr"
    before = open_store(store).read_videos(["clip_0", "clip_1"])
    damage(store / "videos" / "clip_1", "features", how)
    assert invoke(["check", str(store)], tmp_path).exit_code != 0
    result = invoke(args, tmp_path)
    assert result.exit_code == 0, result.output
    assert "1 already complete, 1 to extract" in result.output
    assert invoke(["check", str(store)], tmp_path).exit_code == 0
    after = open_store(store).read_videos(["clip_0", "clip_1"])
    assert all(np.array_equal(before[v][0], after[v][0]) for v in before)
    assert json.loads((store / "zarr.json").read_text())["attributes"]["schema_version"] == 2


def test_a_source_that_broke_after_extraction_loses_its_old_features(tmp_path):
    videos = tmp_path / "videos"
    for i in range(2):
        make_video(videos / f"clip_{i}.mp4", frames=12)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    out = tmp_path / "out"
    args = ["videos", "--videos", str(videos), "--out", str(out), "--params", str(tmp_path / "params.yaml")]
    assert invoke(args, tmp_path).exit_code == 0
    (videos / "clip_1.mp4").write_bytes(b"not a video any more")
    result = invoke(args, tmp_path)
    assert result.exit_code == 0, result.output  # 1 of 2 is within max_failure_fraction 0.6
    store = open_store(out / "rgb.zarr")
    assert store.complete_ids() == ["clip_0"] and list(store.failures()) == ["clip_1"]


def test_a_budgeted_extraction_failure_is_left_out_with_one_line(tmp_path, capsys):
    from pipeline.features.inputs import FeatureSet

    data = {f"v{i}": video(3 + i, seed=i) for i in range(3)}
    with FeatureStoreWriter(tmp_path / "rgb.zarr", attrs()) as writer:
        for vid in ("v0", "v2"):
            writer.write_video(vid, *data[vid], {"duration": 10.0})
        writer.failures.add("v1", "v1.mp4", "undecodable: no video stream")
        writer.set_expected(data)
    videos = FeatureSet(tmp_path).videos(["v0", "v1", "v2"], {v: 10.0 for v in data}, T=6, use_flow=False)
    assert videos.ids == ["v0", "v2"] and tuple(videos.rgb.shape) == (2, 6, 4) and videos.durations.shape == (2,)
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "leaving out 1 of 3 video(s) that failed extraction" in err and "v1" in err
    with pytest.raises(UserError, match="not extracted"):  # a video neither complete nor failed stays an error
        FeatureSet(tmp_path).videos(["v0", "v3"], {"v0": 10.0, "v3": 10.0}, T=6, use_flow=False)


def priors_json(tmp_path: Path, k=2, texts=None) -> Path:
    path = tmp_path / "priors.json"
    texts = texts if texts is not None else ["a person jumps", "someone leaps"]
    images = [f"images/{i}.png" for i in range(len(texts))]
    path.write_text(json.dumps({"k": k, "classes": {"jump": {"texts": texts, "images": images}}}))
    return path


@pytest.mark.parametrize(("k", "texts", "problem"), [
    ("four", None, "'k' must be a whole number"),
    (True, None, "'k' must be a whole number"),
    (4, ["a", "b", "c"], "has 3 sentence\\(s\\), k is 4"),
    (2, ["a person jumps", 7], "every sentence must be non-empty text, got 7"),
    (2, ["a person jumps", None], "every sentence must be non-empty text, got None"),
    (2, ["a person jumps", "  "], "every sentence must be non-empty text"),
])
def test_priors_json_is_checked_where_it_is_read(tmp_path, k, texts, problem):
    from pipeline.features.priors import load_priors_json

    with pytest.raises(UserError, match=problem) as err:
        load_priors_json(priors_json(tmp_path, k, texts))
    assert "\n" not in str(err.value)
    assert load_priors_json(priors_json(tmp_path))[0] == 2


def test_a_stale_or_short_class_in_the_priors_store_is_refused(tmp_path):
    path = tmp_path / "priors.zarr"
    priors_store(path)
    writer = PriorsStoreWriter(path, json.loads((path / "zarr.json").read_text())["attributes"])
    writer.set_classes(["jump", "swim"])  # 'high/jump' was removed from priors.json
    writer.write_class("swim", prior_arrays(k=1), "h")  # 1 pair where the store's k is 2
    writer.lock.release()
    with pytest.raises(UserError, match="no longer in priors.json, e.g. 'high/jump'"):
        read_priors(path, ["jump", "high/jump"])
    with pytest.raises(UserError, match="class 'swim' has 1 prior pair\\(s\\), the store's k is 2"):
        read_priors(path, ["jump", "swim"])
    assert read_priors(path, ["jump"])["jump"]["joint"].shape[0] == 2


def test_a_video_annotated_far_beyond_its_decoded_duration_is_left_out(tmp_path, capsys):
    from pipeline.features.inputs import FeatureSet

    with FeatureStoreWriter(tmp_path / "rgb.zarr", attrs()) as writer:
        for i, vid in enumerate(("v0", "v1", "v2", "v3")):
            writer.write_video(vid, *video(4, seed=i), {"duration": 34.7})
    durations = {"v0": 34.7, "v1": 347.0, "v2": 1e308, "v3": 36.0}  # v3: within the slack
    videos = FeatureSet(tmp_path).videos(list(durations), durations, T=5, use_flow=False)
    assert videos.ids == ["v0", "v3"]
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "leaving out 2 of 4" in err and "v1: 347 s annotated, 34.7 s decoded" in err


def test_a_broken_videos_or_classes_group_is_named_and_rewritten_by_the_next_writer(tmp_path):
    frames, priors = tmp_path / "rgb.zarr", tmp_path / "priors.zarr"
    data = frame_store(frames)
    priors_store(priors)
    for store, child in ((frames, "videos"), (priors, "classes")):
        (store / child / "zarr.json").write_text('{"zarr_format": 3, "node_')
        result = invoke(["check", str(store)], tmp_path)
        assert result.exit_code != 0 and f"invalid {child}: damaged: {child}/zarr.json" in result.output
    with FeatureStoreWriter(frames, attrs()) as writer:
        assert writer.complete_ids() == set(data)
    settings = {"kind": "priors", "joint_unit": "concat"}
    PriorsStoreWriter(priors, {"kind": "priors", "dim": 4, "k": 2, "settings": settings,
                               "settings_sha256": settings_sha256(settings)}).lock.release()
    assert check_feature_store(frames).ok(0.0) and check_priors_store(priors).ok(0.0)


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_priors_class_is_not_current_so_the_priors_stage_writes_it_again(tmp_path, how):
    path = tmp_path / "priors.zarr"
    priors_store(path)
    damage(path / "classes" / "swim", "joint", how)
    root = json.loads((path / "zarr.json").read_text())["attributes"]
    writer = PriorsStoreWriter(path, root)
    assert writer.is_current("jump", "h") and not writer.is_current("swim", "h")
    writer.write_class("swim", {**prior_arrays(seed=2), "token_type": np.zeros((2, 8), np.int8)}, "h")
    writer.lock.release()
    assert check_priors_store(path).ok(0.0) and read_priors(path, CLASSES)["swim"]["joint"].shape == (2, 8, 4)


def rewrite_value(array_dir: Path, index: tuple[int, ...], value: float) -> None:
    """Set one value through zarr itself: the chunk is written whole with a valid crc32c."""
    import zarr

    array = zarr.open_array(array_dir, mode="r+")
    array[index] = value


@pytest.mark.parametrize(("array", "index", "value"), [
    ("features", (1, 2), 1e30), ("features", (0, 0), -2e4), ("features", (2, 1), np.inf),
    ("timestamps", (-1,), 1e7),  # still increasing, but 116 days into a video
])
def test_an_absurd_value_with_a_valid_checksum_is_damage_and_repaired(tmp_path, array, index, value):
    path = tmp_path / "rgb.zarr"
    frame_store(path)
    rewrite_value(path / "videos" / "v2" / array, index, value)
    with pytest.raises(UserError, match=rf"v2: damaged: {array} has (a value of magnitude .* beyond the bound "
                                        r"(10000|1e\+06)|non-finite values)") as err:
        open_store(path).read_videos(["v0", "v1", "v2"])
    assert "\n" not in str(err.value)
    assert list(check_feature_store(path).invalid) == ["v2"]
    with FeatureStoreWriter(path, attrs()) as writer:  # not counted done, so the next run writes it again
        assert writer.complete_ids() == {"v0", "v1"}
        with pytest.raises(ValueError, match="beyond the bound|non-finite"):
            writer.write_video("v3", *[np.full_like(a, value) if name == array else a
                                       for name, a in zip(("features", "timestamps"), video(3), strict=True)], {})


def test_an_absurd_prior_value_with_a_valid_checksum_is_damage(tmp_path):
    path = tmp_path / "priors.zarr"
    priors_store(path)
    rewrite_value(path / "classes" / "swim" / "joint", (1, 3, 2), 1e30)
    with pytest.raises(UserError, match="'swim': a value of magnitude 1e\\+30, beyond the bound 10000"):
        read_priors(path, CLASSES)
    assert list(check_priors_store(path).invalid) == ["swim"]
    writer = PriorsStoreWriter(path, json.loads((path / "zarr.json").read_text())["attributes"])
    assert writer.is_current("jump", "h") and not writer.is_current("swim", "h")
    with pytest.raises(ValueError, match="class 'swim': joint has a value of magnitude 1e\\+30"):
        writer.write_class("swim", {**prior_arrays(), "joint": np.full((2, 8, 4), 1e30, np.float32)}, "h")
    writer.lock.release()


def test_the_priors_stage_removes_the_groups_of_classes_priors_json_no_longer_names(tmp_path, capsys):
    from PIL import Image

    from pipeline.features.priors import PriorEncoder, class_source_sha256, priors_store_attrs, run_priors

    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(tmp_path / "images" / "a.png")
    classes = {name: {"texts": [f"a {name}", f"the {name}"], "images": ["images/a.png"] * 2} for name in CLASSES}
    described = {"model": "m", "weights": "w", "weights_sha256": "abc", "dim": 4, "precision": "fp32"}

    def no_encoding():
        raise AssertionError("every class kept is current: nothing is encoded")

    encoder = PriorEncoder(described, no_encoding)
    store = tmp_path / "priors.zarr"
    writer = PriorsStoreWriter(store, priors_store_attrs(encoder, 2, "a video of a {}", "concat"))
    for name, entry in classes.items():  # as a first run with all three classes wrote them
        source = class_source_sha256(name, entry["texts"], [tmp_path / p for p in entry["images"]])
        writer.write_class(name, prior_arrays(n_text=3, n_image=5), source)
    writer.set_classes(CLASSES)
    writer.lock.release()
    (tmp_path / "priors.json").write_text(json.dumps({"k": 2, "classes": {n: classes[n] for n in ("jump", "swim")}}))
    run_priors(tmp_path / "priors.json", store, encoder, "a video of a {}")
    out = capsys.readouterr().out
    assert "removed 1 class group(s) no longer in priors.json, e.g. 'high/jump'" in out
    assert "3 class(es)" not in out and "2 class(es), 0 encoded, 2 unchanged; 2/2 complete" in out
    assert sorted(p.name for p in (store / "classes").iterdir() if p.is_dir()) == ["jump", "swim"]
    with pytest.raises(UserError, match="no priors for 1 class"):
        read_priors(store, ["jump", "high/jump"])
    run_priors(tmp_path / "priors.json", store, encoder, "a video of a {}")
    assert "removed" not in capsys.readouterr().out


def test_the_final_check_of_a_run_reads_only_what_the_run_did_not_verify(tmp_path):
    path = tmp_path / "rgb.zarr"
    frame_store(path)
    with FeatureStoreWriter(path, attrs()) as writer:
        verified = writer.complete_ids()
    damage(path / "videos" / "v1", "features", "flip")  # after the run's own verification: not read again
    assert check_feature_store(path, verified=verified - {"v2"}).ok(0.0)
    assert list(check_feature_store(path, verified=verified - {"v1"}).invalid) == ["v1"]
