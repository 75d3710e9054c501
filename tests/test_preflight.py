"""`grizal check`: the README's block on the demo params in a fresh-clone layout (runnable: what is not there yet is
made by a stage), and a custom params file lacking videos, weights and the API key (each named, exit 2, no secret)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.doc_workflows import commands
from typer.testing import CliRunner

from pipeline.apps.localize import app
from pipeline.apps.preflight import check_command

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-test-preflight-0123456789abcdefSECRET"


def test_readme_check_on_the_demo_params_says_ready_and_what_the_stages_make(tmp_path):
    (check,) = commands("check")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "grizal").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pipeline.apps.cli "$@"\n')
    (bin_dir / "grizal").chmod(0o755)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
           "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(check, shell=True, executable="/bin/bash", cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "MISSING" not in done.stdout
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("ok")}
    assert set(lines) == {"videos:", "weights:", "priors:", "disk:", "time:"}
    assert "made by the demo_world stage" in lines["videos:"]
    assert "the pretrain stage makes it" in lines["weights:"]
    assert "est. cost $0.0000" in lines["priors:"]
    assert "GB free" in lines["disk:"] and "rough" in lines["time:"]
    assert done.stdout.rstrip().endswith("ready: `dvc repro` can start")


@pytest.fixture
def lacking_project(tmp_path, monkeypatch):
    """A custom data set whose videos are absent, with OpenAI weights not cached and OpenAI prior backends."""
    database = {f"clip_{i}": {"duration": 10.0, "subset": "training" if i < 2 else "validation",
                              "annotations": [{"segment": [1.0, 4.0], "label": "jumping" if i % 2 else "running"}]}
                for i in range(4)}
    (tmp_path / "ann.json").write_text(json.dumps({"database": database}))
    (tmp_path / "videos").mkdir()
    (tmp_path / "unseen.txt").write_text("running\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"] = {"dataset": "custom", "annotations": "ann.json", "video_dir": "videos", "protocol": "open",
                         "unseen_list": "unseen.txt"}
    params["extract"]["clip"].update(model="ViT-B-32-quickgelu", pretrained="openai")
    params["generate"].update(text_backend="openai", image_backend="openai")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no open_clip or Hugging Face cache holds the weights
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path


def run_check(params: str):
    app.command("check")(check_command)
    return CliRunner().invoke(app, ["check", "--params", params])


def test_check_names_every_missing_thing_and_exits_2(lacking_project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = run_check("mine.yaml")
    assert result.exit_code == 2, result.output
    missing = [line for line in result.output.splitlines() if line.startswith("MISSING")]
    assert len(missing) == 3, result.output
    videos, weights, key = missing
    assert "videos: 0 of 4 found in videos; 4 missing, first: videos/clip_0" in videos
    assert "ViT-B-32-quickgelu/openai" in weights and "needs a download" in weights
    assert "extract.clip.pretrained: /path/to/file.pt" in weights
    assert "OPENAI_API_KEY is not set (needed by the openai text and openai image backends)" in key
    priors = next(line for line in result.output.splitlines() if " priors: " in line)
    assert "2 classes, k=4: 2 text and 8 image calls" in priors and "$" in priors and "unknown" not in priors
    assert "3 thing(s) missing" in result.output


def test_check_says_the_key_is_set_but_never_prints_it(lacking_project, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    result = run_check("mine.yaml")
    assert result.exit_code == 2
    assert "ok      API key: OPENAI_API_KEY is set" in result.output
    assert FAKE_KEY not in result.output and FAKE_KEY[-12:] not in result.output


def test_a_local_checkpoint_that_is_missing_is_named(lacking_project):
    params = yaml.safe_load((lacking_project / "mine.yaml").read_text())
    params["extract"]["clip"]["pretrained"] = "weights/vit_b32.pt"
    (lacking_project / "other.yaml").write_text(yaml.safe_dump(params))
    result = run_check("other.yaml")
    assert result.exit_code == 2
    assert "weights: checkpoint file weights/vit_b32.pt not found (extract.clip.pretrained)" in result.output


def test_weights_a_previous_download_left_in_the_hugging_face_cache_are_found(tmp_path, monkeypatch):
    import open_clip

    from pipeline.apps.preflight import check_weights

    repo = open_clip.get_pretrained_cfg("ViT-B-32-quickgelu", "openai")["hf_hub"].rstrip("/")
    folder = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / "open_clip_model.safetensors").write_bytes(b"weights")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    finding = check_weights({"model": "ViT-B-32-quickgelu", "pretrained": "openai"}, "custom")
    assert finding.ok and "in the local cache" in finding.text and "open_clip_model.safetensors" in finding.text
