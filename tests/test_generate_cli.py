"""The `python -m pipeline.generate` command line: class sources, params, dry run, open-world images, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.generate import app

REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def priors(out: Path) -> dict:
    return json.loads((out / "priors.json").read_text())


def test_help_lists_the_options():
    result = subprocess.run([sys.executable, "-m", "pipeline.generate", "--help"], cwd=REPO, capture_output=True,
                            text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    for option in ("--classes", "--classes-file", "--dataset", "--split", "--index", "--params", "--text-backend",
                   "--image-backend", "--k", "--out", "--dry-run", "openai | hf", "openworld"):
        assert option in result.stdout


def test_offline_run_writes_priors_texts_images_and_manifest(tmp_path):
    result = invoke("--classes", "circle rises,CleanAndJerk", "--out", tmp_path, "--image-size", 96)
    assert result.exit_code == 0, result.output
    data = priors(tmp_path)
    assert data["k"] == 4 and list(data["classes"]) == ["circle rises", "CleanAndJerk"]
    for entry in data["classes"].values():
        assert len(entry["texts"]) == len(entry["images"]) == 4
        for path in entry["images"]:
            assert not Path(path).is_absolute()
            with Image.open(tmp_path / path) as image:
                assert image.size == (96, 96) and image.mode == "RGB"
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(line)["status"] == "ok" for line in lines)
    assert "generated" in result.output and "cached" in result.output


def test_dry_run_calls_nothing_and_writes_nothing(tmp_path):
    out = tmp_path / "priors"
    result = invoke("--dataset", "thumos14", "--split-setting", "75_25", "--split", 3, "--subset", "unseen",
                    "--text-backend", "openai", "--image-backend", "openai", "--out", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert "5 calls" in result.output and "20 calls" in result.output
    assert "$0.8" in result.output  # 20 DALL-E 3 images at $0.04 plus five GPT-4o calls


def test_params_section_and_index_drive_the_dvc_stage(tmp_path):
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"schema": 1, "dataset": "demo", "classes": ["circle rises", "cross falls"],
                                 "videos": {}}))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"generate": {"index": str(index), "out": str(tmp_path / "out"), "k": 2,
                                                   "image_size": 64, "text_backend": "offline"}}))
    result = invoke("--params", params)
    assert result.exit_code == 0, result.output
    data = priors(tmp_path / "out")
    assert data["k"] == 2 and list(data["classes"]) == ["circle rises", "cross falls"]
    # A command-line option wins over params.
    result = invoke("--params", params, "--classes", "square rises", "--k", 3, "--out", tmp_path / "adhoc")
    assert result.exit_code == 0
    assert list(priors(tmp_path / "adhoc")["classes"]) == ["square rises"] and priors(tmp_path / "adhoc")["k"] == 3
    assert list(priors(tmp_path / "out")["classes"]) == ["circle rises", "cross falls"]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_adhoc_run_leaves_the_pipeline_output_alone_and_shares_its_items(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"schema": 1, "dataset": "demo", "classes": ["circle rises", "cross falls"],
                                 "videos": {}}))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"generate": {"index": str(index), "out": "cache/priors", "k": 2,
                                                   "image_size": 32}}))
    assert invoke("--params", params).exit_code == 0  # the DVC stage
    stage = tree(tmp_path / "cache/priors")
    assert sorted({name.split("/")[0] for name in stage}) == ["images", "manifest.jsonl", "priors.json", "texts"]

    result = invoke("--classes", "circle rises,square falls", "--k", 2, "--image-size", 32)
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / "cache/priors") == stage
    adhoc = tmp_path / "outputs/priors/circle-rises_square-falls"
    assert "outputs/priors/circle-rises_square-falls/priors.json" in result.output
    data = priors(adhoc)
    assert list(data["classes"]) == ["circle rises", "square falls"]
    assert all((adhoc / path).is_file() for entry in data["classes"].values() for path in entry["images"])
    # The stage's items were reused (the one texts item and two images of "circle rises"), not made again.
    made = [json.loads(line) for line in (adhoc / "manifest.jsonl").read_text().splitlines()]
    assert {record["class"] for record in made} == {"square falls"}
    # With --params too, classes named on the command line keep the run ad hoc.
    assert invoke("--params", params, "--classes", "square falls").exit_code == 0
    assert tree(tmp_path / "cache/priors") == stage
    # The stage, run again after the ad-hoc runs, still holds exactly its own classes' items.
    assert invoke("--params", params).exit_code == 0
    assert tree(tmp_path / "cache/priors") == stage


def test_the_stage_reuses_items_its_output_holds_and_keeps_exactly_its_own(tmp_path, monkeypatch):
    """A fresh clone after `dvc pull` has cache/priors but no item cache; a class dropped from the index
    leaves the output (its items go to the item cache, so they are not made again)."""
    monkeypatch.chdir(tmp_path)
    index = tmp_path / "index.json"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"generate": {"index": str(index), "k": 2, "image_size": 32}}))

    def stage(*classes):
        index.write_text(json.dumps({"schema": 1, "dataset": "demo", "classes": list(classes), "videos": {}}))
        result = invoke("--params", params)
        assert result.exit_code == 0, result.output
        return result.output

    def made() -> list[str]:
        lines = (tmp_path / "cache/priors/manifest.jsonl").read_text().splitlines()
        return [json.loads(line)["class"] for line in lines]

    stage("circle rises", "cross falls")
    assert len(made()) == 6
    shutil.rmtree(tmp_path / "cache/prior_items")
    stage("circle rises")
    assert len(made()) == 6  # nothing made: the items came from the output folder
    assert not any("cross-falls" in name for name in tree(tmp_path / "cache/priors"))
    assert len(list((tmp_path / "cache/prior_items/images").rglob("*.png"))) == 2  # cross falls' images
    stage("circle rises", "cross falls")
    assert len(made()) == 6
    assert len(list((tmp_path / "cache/priors/images").rglob("*.png"))) == 4


THUMOS = REPO / "pipeline/data/shipped/thumos_annotations/thumos_anno_action.json"


def paper_params(tmp_path: Path, dataset: str = "thumos14", annotations: Path | str = THUMOS) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "prepare": {"dataset": dataset, "annotations": str(annotations), "video_dir": "/nowhere",
                    "split_setting": "75_25", "split_id": 0},
        "generate": {"index": str(tmp_path / "index.json"), "out": str(tmp_path / "priors"), "k": 2}}))
    return params


def write_index(tmp_path: Path, dataset: str, classes: list[str]) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"schema": 1, "dataset": dataset, "classes": classes,
                                                     "videos": {}}))


@pytest.mark.parametrize("index", [None, "demo"])
def test_a_paper_config_dry_run_prices_its_own_classes_never_a_stale_index(tmp_path, index):
    params = paper_params(tmp_path)
    if index:
        write_index(tmp_path, index, ["circle rises", "cross falls"])
    result = invoke("--params", params, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "pricing the 20 classes of thumos14" in result.output
    assert "20 calls" in result.output and "ThrowDiscus" in result.output and "circle rises" not in result.output
    assert not (tmp_path / "priors").exists()
    # The stage itself never runs on an index of another data set (or none): one line says what to do.
    result = invoke("--params", params)
    assert result.exit_code == 2
    state = "does not exist yet" if index is None else "was written for data set 'demo'"
    assert f"{state}, but {params} prepares 'thumos14': run `dvc repro prepare` first" in result.output
    assert "Traceback" not in result.output


def test_a_dry_run_takes_the_index_of_the_configured_data_set(tmp_path):
    params = paper_params(tmp_path)
    write_index(tmp_path, "thumos14", ["BaseballPitch", "Diving"])
    result = invoke("--params", params, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "pricing" not in result.output and "2 calls" in result.output and "ThrowDiscus" not in result.output


def test_without_annotations_a_dry_run_prices_the_shipped_class_lists(tmp_path):
    result = invoke("--params", paper_params(tmp_path, "activitynet", "/nowhere/activity_net.json"), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "pricing the 200 classes of activitynet" in result.output and "200 calls" in result.output
    result = invoke("--params", paper_params(tmp_path, "custom", tmp_path / "mine.json"), "--dry-run")
    assert result.exit_code == 2 and "mine.json: file not found" in result.output


@pytest.mark.parametrize("args, message", [
    (["--out", "cache/priors"], "error: --out: cache/priors holds the DVC pipeline's priors"),
    (["--out", "cache"], "holds the DVC pipeline's priors"),
    (["--store", "cache/priors"], "error: --store: cache/priors is inside the DVC pipeline's output"),
])
def test_an_adhoc_run_refuses_to_write_the_pipeline_output(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke("--classes", "skiing", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "cache/priors").exists()


def make_openworld(root: Path) -> None:
    for folder, modes in {"clean_and_jerk": ["RGBA", "L", "P", "RGB"], "Skiing": ["RGB", "RGB"]}.items():
        (root / folder).mkdir(parents=True)
        for i, mode in enumerate(modes):
            Image.new(mode, (80 + 10 * i, 60), 100 + i).save(root / folder / f"{i}.png")
    (root / "Skiing" / "notes.txt").write_text("not an image")


def test_openworld_images_are_matched_by_loose_class_name_and_normalised(tmp_path):
    make_openworld(tmp_path / "world")
    out = tmp_path / "out"
    result = invoke("--classes", "CleanAndJerk,Skiing,Surfing", "--image-backend", "openworld",
                    "--openworld-dir", tmp_path / "world", "--out", out)
    assert result.exit_code == 1
    data = priors(out)
    assert list(data["classes"]) == ["CleanAndJerk"]
    for path in data["classes"]["CleanAndJerk"]["images"]:
        with Image.open(out / path) as image:
            assert image.mode == "RGB" and image.size == (224, 224)
    assert "holds 2 images, 3 needed" in result.output
    assert "no folder for this class" in result.output
    # Adding pictures completes the class; what was copied before stays cached.
    for i in range(2, 4):
        Image.new("RGB", (50, 50), i).save(tmp_path / "world" / "Skiing" / f"{i}.jpg")
    result = invoke("--classes", "CleanAndJerk,Skiing", "--image-backend", "openworld",
                    "--openworld-dir", tmp_path / "world", "--out", out)
    assert result.exit_code == 0, result.output
    assert len(priors(out)["classes"]["Skiing"]["images"]) == 4


@pytest.mark.parametrize("args, message", [
    (["--classes-file", "missing.txt"], "error: missing.txt: classes file not found"),
    (["--classes", "a", "--dataset", "thumos14"], "name the classes one way only"),
    (["--split", "2", "--classes", "a"], "error: --split: needs --dataset"),
    (["--classes", "a", "--text-backend", "gpt"], "error: --text-backend: generate.text_backend: expected one of "
                                                  "offline, openai, hf, got 'gpt'"),
    (["--dataset", "thumos14", "--split", "99"], "error: --split: thumos14 75_25 has no split 99"),
    (["--classes", "a", "--image-backend", "openworld", "--openworld-dir", "nowhere"], "openworld folder not found"),
    ([], "no classes: give --classes"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, args, message):
    result = invoke(*args, "--out", tmp_path)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2


def test_a_params_file_without_a_generate_section_is_a_user_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("prepare: {}\n")
    result = invoke("--params", params)
    assert result.exit_code == 2 and "missing section 'generate'" in result.output
