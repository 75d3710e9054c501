"""Dataset parsers, zero-shot splits and bad-input handling."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.common import UserError
from pipeline.data.activitynet import parse_activitynet_bmn, parse_activitynet_json, read_class_list
from pipeline.data.build import build_split, prepare
from pipeline.data.charades import parse_charades_sta
from pipeline.data.index import Index, attach_videos
from pipeline.data.splits import (
    SPLIT_ROOT,
    closed_set,
    closed_validation_split,
    open_set,
    published_split,
    read_list,
    validation_split,
)
from pipeline.data.thumos import parse_thumos

ROOT = Path(__file__).resolve().parents[1]

DATA = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "shipped"
THUMOS = DATA / "thumos_annotations" / "thumos_anno_action.json"


@pytest.fixture(scope="module")
def thumos():
    return parse_thumos(THUMOS)


def test_thumos_real_file(thumos):
    assert len(thumos.classes) == 20
    subsets = [v.subset for v in thumos.videos.values()]
    assert subsets.count("train") == 200
    # video_test_0001292 has no annotations in the file: it is reported, not silently kept.
    assert subsets.count("test") == 212
    assert [s["video"] for s in thumos.skipped] == ["video_test_0001292"]
    assert "CleanAndJerk" in thumos.classes


@pytest.mark.parametrize(
    ("dataset", "setting", "n_splits", "seen", "unseen"),
    [("thumos14", "75_25", 10, 15, 5), ("thumos14", "50_50", 10, 10, 10),
     ("activitynet", "75_25", 10, 150, 50), ("activitynet", "50_50", 10, 100, 100)],
)
def test_published_split_class_counts(dataset, setting, n_splits, seen, unseen):
    anet_classes = set(read_class_list(DATA / "activitynet_annotations" / "action_name.csv"))
    for split_id in range(n_splits):
        s, u = published_split(dataset, setting, split_id)
        assert (len(s), len(u)) == (seen, unseen)
        assert not set(s) & set(u)
        if dataset == "activitynet":
            assert set(s) | set(u) <= anet_classes


def test_thumos_50_50_split_10_is_the_closed_set_list(thumos):
    seen, unseen = published_split("thumos14", "50_50", 10)
    assert seen == unseen and len(seen) == 20
    split = build_split(thumos, {"protocol": "open", "split_setting": 5050, "split_id": 10})
    assert split.protocol == "closed" and split.unseen == thumos.classes


def test_thumos_open_set_protocol(thumos):
    seen, unseen = published_split("thumos14", "75_25", 3)
    split = open_set(thumos, seen, unseen, "open_75_25", 3)
    for vid in split.train_videos:
        labels = thumos.videos[vid].labels()
        assert thumos.videos[vid].subset == "train" and labels & set(seen) and not labels & set(unseen)
    for vid in split.test_videos:
        assert thumos.videos[vid].subset == "test" and thumos.videos[vid].labels() & set(unseen)
    assert split.train_videos and split.test_videos


def test_validation_split_reads_only_the_training_side(thumos):
    seen, unseen = published_split("thumos14", "75_25", 3)
    split = open_set(thumos, seen, unseen, "open_75_25", 3)
    held = validation_split(split, thumos, seed=1)
    assert len(held.unseen) == round(0.25 * len(seen)) and set(held.unseen) | set(held.seen) == set(seen)
    assert not set(held.unseen) & set(held.seen)
    assert set(held.train_videos) | set(held.test_videos) == set(split.train_videos)
    for vid in held.train_videos:
        assert not thumos.videos[vid].labels() & set(held.unseen)
    for vid in held.test_videos:
        assert thumos.videos[vid].labels() & set(held.unseen)
    assert held.test_videos and held.train_videos
    assert validation_split(split, thumos, seed=1) == held
    assert validation_split(split, thumos, seed=2).unseen != held.unseen


def test_closed_validation_split_holds_out_a_quarter_of_the_training_videos_on_every_class(thumos):
    split = closed_set(thumos)
    held = closed_validation_split(split, seed=1)
    assert held.seen == held.unseen == split.seen
    assert not set(held.train_videos) & set(held.test_videos)
    assert set(held.train_videos) | set(held.test_videos) == set(split.train_videos)
    assert len(held.test_videos) == round(0.25 * len(split.train_videos))
    assert not set(held.test_videos) & set(split.test_videos)
    assert closed_validation_split(split, seed=1) == held
    assert closed_validation_split(split, seed=2).test_videos != held.test_videos


def test_closed_set_uses_everything(thumos):
    split = closed_set(thumos)
    assert split.seen == split.unseen == thumos.classes
    assert len(split.train_videos) + len(split.test_videos) == len(thumos.videos)


def test_split_naming_unknown_class_is_a_clear_error(thumos, tmp_path):
    with pytest.raises(UserError, match="does not have: Skiing"):
        open_set(thumos, ["HighJump"], ["Skiing"], "open", 0, tmp_path / "x.list")


def test_missing_split_is_a_clear_error():
    with pytest.raises(UserError, match="thumos14 75_25 has no split 42"):
        published_split("thumos14", "75_25", 42)


def test_split_list_with_duplicates(tmp_path):
    path = tmp_path / "s.list"
    path.write_text("A\nB\nA\n")
    with pytest.raises(UserError, match="twice"):
        read_list(path)


def test_split_lists_are_shipped_in_the_project():
    assert SPLIT_ROOT.is_relative_to(Path(__file__).resolve().parents[1])
    assert len(list(SPLIT_ROOT.rglob("*.list"))) == 2 * (10 + 10) + 2 * (10 + 11)


ANET_EXCERPT = {
    "version": "VERSION 1.3",
    "database": {
        "v_a": {"subset": "training", "duration": 30.0, "fps": 30,
                "annotations": [{"segment": [1.0, 5.5], "label": "Skiing"},
                                {"segment": [20.0, 31.2], "label": "Surfing"}]},
        "v_b": {"subset": "validation", "duration": 12.0,
                "annotations": [{"segment": [4.0, 2.0], "label": "Skiing"},
                                {"segment": [-1.0, 2.0], "label": "Skiing"},
                                {"segment": [3.0, 6.0], "label": "Skiing"}]},
        "v_c": {"subset": "testing", "duration": 10.0, "annotations": []},
    },
}


def test_activitynet_official_excerpt(tmp_path):
    path = tmp_path / "anet.json"
    path.write_text(json.dumps(ANET_EXCERPT))
    index = parse_activitynet_json(path)
    assert index.videos["v_a"].subset == "train" and index.videos["v_b"].subset == "test"
    assert index.videos["v_a"].segments[1].end == 30.0  # clamped to the duration
    assert [(s.start, s.end) for s in index.videos["v_b"].segments] == [(3.0, 6.0)]
    reasons = " | ".join(s["reason"] for s in index.skipped)
    assert "reversed" in reasons and "before 0" in reasons and "no usable annotations" in reasons
    assert "v_c" not in index.videos
    assert "v_c" in parse_activitynet_json(path, allow_empty=True).videos


def test_activitynet_bmn_with_video_info(tmp_path):
    anno = tmp_path / "anet_anno_action.json"
    anno.write_text(json.dumps({
        "v_x": {"duration_second": 14.07, "annotations": [{"segment": [0.5, 10.0], "label": "Skiing"}]},
        "v_y": {"duration_second": 92.18, "annotations": [{"segment": [3, 40], "label": "Surfing"}]},
        "v_unlisted": {"duration_second": 5, "annotations": [{"segment": [1, 2], "label": "Skiing"}]},
    }))
    info = tmp_path / "video_info_new.csv"
    info.write_text("video,numFrame,seconds,fps,rfps,subset,featureFrame\n"
                    "v_x,418,14.07,30.0,29.7,training,400\nv_y,2303,92.18,25.0,24.98,validation,2304\n")
    index = parse_activitynet_bmn(anno, info)
    assert {v: e.subset for v, e in index.videos.items()} == {"v_x": "train", "v_y": "test"}
    assert index.videos["v_y"].fps == 25.0
    assert index.skipped[0]["video"] == "v_unlisted"


def test_activitynet_class_list_is_real():
    assert len(read_class_list(DATA / "activitynet_annotations" / "action_name.csv")) == 200


def test_charades_sta_excerpt(tmp_path):
    (tmp_path / "charades_sta_train.txt").write_text(
        "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n"
        "AO8RW 5.0 40.0##person begins to play on a phone.\n"
        "Y6R7T 8.0 3.0##a person opens the door.\n")
    (tmp_path / "charades_sta_test.txt").write_text("3MSZA 24.3 30.4##person turn a light on.\n")
    (tmp_path / "Charades_v1_train.csv").write_text("id,subject,length\nAO8RW,x,33.67\nY6R7T,y,20.0\n")
    (tmp_path / "Charades_v1_test.csv").write_text("id,subject,length\n3MSZA,z,30.96\n")
    index = parse_charades_sta(
        {"train": tmp_path / "charades_sta_train.txt", "test": tmp_path / "charades_sta_test.txt"},
        [tmp_path / "Charades_v1_train.csv", tmp_path / "Charades_v1_test.csv"])
    segs = index.videos["AO8RW"].segments
    assert [(s.start, s.end) for s in segs] == [(0.0, 6.9), (5.0, 33.67)]  # end clamped
    assert segs[0].label == "a person is putting a book on a shelf"
    assert index.videos["3MSZA"].subset == "test"
    assert "Y6R7T" not in index.videos and "reversed" in index.skipped[0]["reason"]


def test_charades_malformed_line(tmp_path):
    (tmp_path / "sta.txt").write_text("AO8RW 0.0##no end\n")
    (tmp_path / "c.csv").write_text("id,length\nAO8RW,10\n")
    with pytest.raises(UserError, match="line 1: expected 'VID START END##sentence'"):
        parse_charades_sta({"train": tmp_path / "sta.txt"}, [tmp_path / "c.csv"])


@pytest.mark.parametrize(("content", "problem"), [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    ('{"videos": []}', "ActivityNet format"),
    ('{"database": {"v": {"subset": "training", "duration": "long", "annotations": []}}}', "not a number"),
])
def test_bad_annotation_files(tmp_path, content, problem):
    path = tmp_path / "anno.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=problem) as err:
        parse_activitynet_json(path)
    assert str(path) in str(err.value)


def test_duplicate_video_ids_are_an_error(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"database": {"v": {"subset": "training", "duration": 5, "annotations": []},'
                    ' "v": {"subset": "training", "duration": 5, "annotations": []}}}')
    with pytest.raises(UserError, match="duplicate key 'v'"):
        parse_activitynet_json(path, allow_empty=True)


def test_listed_video_missing_on_disk_is_skipped(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v_a.mp4").write_bytes(b"x")
    path = tmp_path / "anet.json"
    path.write_text(json.dumps(ANET_EXCERPT))
    index = parse_activitynet_json(path)
    attach_videos(index, tmp_path / "videos", path)
    assert list(index.videos) == ["v_a"] and index.videos["v_a"].path.endswith("v_a.mp4")
    assert any(s["video"] == "v_b" and "no video file" in s["reason"] for s in index.skipped)


def test_videos_outside_the_folder_broken_links_and_folders_are_skipped_with_reasons(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (tmp_path / "outside.mp4").write_bytes(b"x")  # what '../outside' would read
    (videos / "ok.mp4").write_bytes(b"x")
    (videos / "broken.mp4").symlink_to(tmp_path / "gone.mp4")
    (videos / "folder.mp4").mkdir()
    (videos / "linked.mp4").symlink_to(tmp_path / "outside.mp4")  # linked in by the user: read where it points
    ids = ["../outside", str(tmp_path / "outside"), "ok", "broken", "folder", "linked"]
    path = tmp_path / "anet.json"
    path.write_text(json.dumps({"database": {vid: {"subset": "validation", "duration": 5.0, "annotations": [
        {"segment": [1, 2], "label": "Run"}]} for vid in ids}}))
    index = parse_activitynet_json(path)
    attach_videos(index, videos, path)
    assert sorted(index.videos) == ["linked", "ok"]
    reasons = {s["video"]: s["reason"] for s in index.skipped}
    assert "points outside" in reasons["../outside"] and "points outside" in reasons[str(tmp_path / "outside")]
    assert "broken.mp4 is a broken link" in reasons["broken"]
    assert "folder.mp4 is a folder, not a video file" in reasons["folder"]


def test_index_roundtrip(thumos):
    again = Index.from_json(thumos.to_json())
    assert again.to_json() == thumos.to_json()


def anet_with_videos(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "anet.json"
    path.write_text(json.dumps(ANET_EXCERPT))
    (tmp_path / "videos").mkdir()
    for name in names:
        (tmp_path / "videos" / name).write_bytes(b"x")
    return path


@pytest.mark.parametrize("files, problem", [
    ([], "0 videos found (no .mp4/"),
    (["notes.txt"], "0 videos found"),
    (["other.mp4", "v_zzz.mkv"], "none of the 2 annotated videos is in this folder of 2 videos (e.g. no v_b.mp4)"),
])
def test_an_empty_or_unrelated_video_folder_says_so(tmp_path, files, problem):
    path = anet_with_videos(tmp_path, files)
    with pytest.raises(UserError, match=re.escape(problem)):
        attach_videos(parse_activitynet_json(path), tmp_path / "videos", path)


def test_prepare_cli_missing_and_empty_video_folders_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder, problem in (("nowhere", "video folder not found"), ("empty", "0 videos found")):
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump({"prepare": {
            "dataset": "thumos14", "annotations": str(ROOT / "pipeline/data/shipped/thumos_annotations/"
                                                          "thumos_anno_action.json"),
            "video_dir": str(tmp_path / folder), "protocol": "open", "split_setting": "75_25", "split_id": 0}}))
        result = subprocess.run([sys.executable, "-m", "pipeline.prepare", "--params", str(params), "--out",
                                 str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / folder}: {problem}")
        assert "split names classes" not in result.stderr


INFERENCE = {"database": {
    "train_1": {"subset": "training", "duration": 20.0, "annotations": [{"segment": [1, 5], "label": "jump"}]},
    "train_2": {"subset": "training", "duration": 20.0, "annotations": [{"segment": [2, 9], "label": "run"}]},
    "mine_1": {"subset": "validation", "duration": 15.0, "annotations": []},
    "mine_2": {"subset": "testing", "duration": 25.0, "annotations": []},
}}


def inference_params(tmp_path: Path, allow_empty: bool) -> dict:
    (tmp_path / "mine.json").write_text(json.dumps(INFERENCE))
    (tmp_path / "unseen.txt").write_text("wave\n")
    (tmp_path / "videos").mkdir(exist_ok=True)
    for vid in INFERENCE["database"]:
        (tmp_path / "videos" / f"{vid}.mp4").write_bytes(b"x")
    return {"dataset": "custom", "annotations": str(tmp_path / "mine.json"), "video_dir": str(tmp_path / "videos"),
            "allow_empty": allow_empty, "protocol": "open", "unseen_list": str(tmp_path / "unseen.txt")}


def test_unlabelled_custom_videos_become_test_videos_for_classes_no_annotation_names(tmp_path):
    index, split = prepare(inference_params(tmp_path, True), tmp_path / "out")
    assert split.seen == ["jump", "run"] and split.unseen == ["wave"]
    assert split.train_videos == ["train_1", "train_2"] and split.test_videos == ["mine_1", "mine_2"]
    written = json.loads((tmp_path / "out" / "index.json").read_text())
    assert written["classes"] == ["jump", "run", "wave"]  # so the generate stage makes priors for "wave"
    assert Index.load(tmp_path / "out" / "index.json").classes == ["jump", "run", "wave"]
    assert all(not index.videos[vid].segments for vid in split.test_videos)


def test_unlabelled_test_videos_without_allow_empty_say_what_to_set(tmp_path):
    with pytest.raises(UserError, match="split names classes the data set does not have: wave"):
        prepare(inference_params(tmp_path, False), tmp_path / "out")
    cfg = {**inference_params(tmp_path, False), "unseen_list": None, "protocol": "closed"}
    cfg["annotations"] = str(tmp_path / "train_only.json")
    database = {k: v for k, v in INFERENCE["database"].items() if v["annotations"]}
    (tmp_path / "train_only.json").write_text(json.dumps({"database": database}))
    with pytest.raises(UserError, match="no test videos .*need prepare.allow_empty: true"):
        prepare(cfg, tmp_path / "out")


def anet(tmp_path, **record):
    path = tmp_path / "anet.json"
    base = {"subset": "training", "duration": 30.0,
            "annotations": [{"segment": [1.0, 5.0], "label": "Surfing"}]}
    path.write_text(json.dumps({"database": {"v1": {**base, **record}}}))
    return path


@pytest.mark.parametrize("fps", ["abc", [1], "nan", float("inf"), -5, True, {"a": 1}])
def test_a_bad_fps_is_one_line(tmp_path, fps):
    path = anet(tmp_path, fps=fps)
    with pytest.raises(UserError, match="video v1: fps .* is not a positive number") as err:
        parse_activitynet_json(path)
    assert "\n" not in str(err.value)


def test_a_good_fps_is_kept_and_nan_never_reaches_index_json(tmp_path):
    index = parse_activitynet_json(anet(tmp_path, fps="29.97"))
    assert index.videos["v1"].fps == 29.97
    index.videos["v1"].fps = float("nan")
    json.loads(json.dumps(index.to_json(), allow_nan=False))  # valid JSON everywhere


@pytest.mark.parametrize("annotations", [5, "Surfing", {"segment": [1, 2]}])
def test_annotations_that_are_not_a_list_are_a_recorded_skip(tmp_path, annotations):
    path = tmp_path / "anet.json"
    path.write_text(json.dumps({"database": {
        "v1": {"subset": "training", "duration": 30.0, "annotations": annotations},
        "v2": {"subset": "training", "duration": 30.0, "annotations": [{"segment": [1, 5], "label": "Surfing"}]}}}))
    index = parse_activitynet_json(path)
    assert list(index.videos) == ["v2"]
    assert any(s["video"] == "v1" and "not a list" in s["reason"] for s in index.skipped)


def test_a_non_utf8_split_list_is_one_line(tmp_path):
    path = tmp_path / "unseen.txt"
    path.write_bytes(b"Surfing\nCaf\xe9 dancing\n")
    with pytest.raises(UserError, match="not UTF-8 text"):
        read_list(path)
