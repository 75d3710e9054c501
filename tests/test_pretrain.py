"""The `pretrain` stage: a tiny run writes a checkpoint the extractor's loader reads, the same params give the same
bytes, another data set trains nothing, bad params are one line, and a run stopped early leaves no checkpoint."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from grizal.encoders.clip import ClipSpec, load_clip
from pipeline import common
from pipeline import pretrain as door
from pipeline.common import load_params
from pipeline.params_schema import validate_section
from pipeline.pretraining import corpus, loop, run
from pipeline.pretraining.corpus import CorpusConfig, make_stills

ROOT = Path(__file__).resolve().parents[1]
TINY = {"steps": 3, "batch_size": 16, "n_stills": 48, "eval_stills": 8, "warmup": 1}


def write_params(path: Path, dataset: str = "demo", **pretrain) -> Path:
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["pretrain"].update({**TINY, **pretrain})
    params["prepare"]["dataset"] = dataset
    if dataset == "thumos14":
        params["prepare"]["annotations"] = "thumos.json"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def invoke(params: Path, out: Path):
    return CliRunner().invoke(door.app, ["--params", str(params), "--out", str(out), "--workers", "1"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    result = invoke(write_params(root / "params.yaml"), root / "out")
    assert result.exit_code == 0, result.output
    return root


def test_a_tiny_run_writes_a_checkpoint_the_extractor_loads(tiny_run):
    out = tiny_run / "out"
    report = json.loads((out / run.REPORT).read_text())
    assert report["steps"] == 3 and report["checkpoint_sha256"] == sha256(out / run.CHECKPOINT)
    assert set(report["held_out"]) == {"shape", "color", "motion", "stills"} and report["held_out"]["stills"] == 8
    assert report["chance"]["shape"] == 0.25 and np.isfinite(report["loss"]["final"])
    assert not (out / door.NOT_TRAINED).exists()
    encoder = load_clip(ClipSpec(model="grizal-demo", pretrained=str(out / run.CHECKPOINT), precision="fp32"))
    trained = torch.load(out / run.CHECKPOINT, weights_only=True)
    assert torch.equal(encoder.model.state_dict()["visual.attnpool.c_proj.weight"],
                       trained["visual.attnpool.c_proj.weight"])
    assert encoder.weights == str(out / run.CHECKPOINT) and encoder.dim == 128
    assert encoder.model.context_length == 32


def test_same_params_same_checkpoint_another_seed_another(tiny_run, tmp_path):
    again = invoke(write_params(tmp_path / "same.yaml"), tmp_path / "same")
    other = invoke(write_params(tmp_path / "other.yaml", seed=1), tmp_path / "other")
    assert again.exit_code == 0 and other.exit_code == 0, again.output + other.output
    first = sha256(tiny_run / "out" / run.CHECKPOINT)
    assert sha256(tmp_path / "same" / run.CHECKPOINT) == first
    assert sha256(tmp_path / "other" / run.CHECKPOINT) != first


def test_the_corpus_is_the_same_for_any_number_of_workers(monkeypatch):
    cfg = CorpusConfig(n_stills=30)
    monkeypatch.setattr(loop, "CHUNK", 8)
    one, two = loop.render_corpus(cfg, workers=1), loop.render_corpus(cfg, workers=2)
    assert np.array_equal(one[0], two[0]) and one[1] == two[1]
    images, captions, _ = make_stills(cfg, 10, 30)
    assert np.array_equal(one[0][10:], images) and one[1][10:] == captions
    other = make_stills(dataclasses.replace(cfg, seed=1), 10, 30)
    assert not np.array_equal(other[0], images)


def test_captions_name_colour_and_shape_and_fill_the_context():
    cfg = CorpusConfig(n_stills=400)
    _, captions, stills = make_stills(cfg, 0, 400)
    for text, still in zip(captions, stills, strict=True):
        assert still.color in text and any(w in text for w in corpus.SHAPE_WORDS[still.shape]), text
    lengths = (loop.tokenize(captions) > 0).sum(1)
    assert lengths.max() == 32 and lengths.min() < 12  # short and long captions: every text position is trained
    assert {s.shape for s in stills} == set(corpus.ALL_SHAPES) and any(s.motion for s in stills)


def test_another_data_set_trains_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / run.CHECKPOINT).write_bytes(b"stale")
    result = invoke(write_params(tmp_path / "p.yaml", dataset="thumos14", steps="not read"), out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [door.NOT_TRAINED, run.CHECKPOINT]
    assert "prepares data set 'thumos14'" in (out / door.NOT_TRAINED).read_text()


@pytest.mark.parametrize(("key", "value", "expect"), [
    ("steps", 0, "pretrain.steps: expected an integer >= 1, got 0"),
    ("batch_size", 1, "pretrain.batch_size: expected an integer >= 2, got 1"),
    ("max_radius", 5.0, "pretrain.max_radius: expected a number >= pretrain.min_radius (7), got 5.0"),
    ("distractor_counts", [0.5, 0.6], "pretrain.distractor_counts: expected probabilities of 0, 1, 2, ... "
                                      "distractors that sum to 1, got [0.5, 0.6] (sum 1.1)"),
    ("stils", 3, "pretrain.stils: unknown key"),
])
def test_bad_params_are_one_line(tmp_path, key, value, expect):
    params = write_params(tmp_path / "bad.yaml", **{key: value})
    result = invoke(params, tmp_path / "out")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {params}: {expect}"), result.output
    assert not (tmp_path / "out" / run.CHECKPOINT).exists()


def test_defaults_match_the_code():
    section = validate_section({"pretrain": {}}, "pretrain", "x.yaml")
    cfg = loop.PretrainConfig.from_section(section, image_size=64)
    assert cfg == loop.PretrainConfig()
    assert cfg.corpus == CorpusConfig()


def test_a_run_stopped_during_training_leaves_no_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for name in (run.CHECKPOINT, run.REPORT):
        (out / name).write_text("from an earlier run")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.pretrain(validate_section({"pretrain": TINY}, "pretrain", "x"), out, workers=1)
    assert list(out.iterdir()) == []


def test_a_run_stopped_while_writing_leaves_no_checkpoint(tmp_path, monkeypatch):
    real_replace = common.os.replace

    def killed(src, dst):
        if Path(dst).name == run.CHECKPOINT:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(common.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run.pretrain(validate_section({"pretrain": TINY}, "pretrain", "x"), tmp_path, workers=1)
    assert list(tmp_path.iterdir()) == []
