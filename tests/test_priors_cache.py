"""Cache behaviour: reruns make no calls, new classes only their own, a new image backend keeps the texts, and
an interrupted or killed run loses nothing it finished."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.fake_openai import FakeOpenAI
from PIL import Image
from rich.console import Console

from pipeline.priors.cache import PriorCache
from pipeline.priors.config import build_config
from pipeline.priors.generation import run
from pipeline.priors.manifest import read_manifest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cache-0123456789")
        yield fake


def generate(out, classes, **overrides):
    settings = {"out": out, "text_backend": "openai", "image_backend": "openai", "k": 2, "backoff_s": 0.001}
    settings.update(overrides)
    code = run(build_config(None, overrides=settings), classes, console=Console(file=io.StringIO()))
    return code, json.loads((Path(out) / "priors.json").read_text())


def classes_called(server) -> set[str]:
    called = set()
    for request in server.requests:
        text = request["messages"][-1]["content"] if request["endpoint"] == "chat" else request["prompt"]
        called.update(name for name in ("skiing", "surfing", "rowing", "diving") if name in text)
    return called


def test_a_rerun_makes_zero_calls(server, tmp_path):
    code, first = generate(tmp_path, ["skiing", "surfing"])
    assert code == 0 and server.calls == {"chat": 2, "images": 4}
    server.reset_counts()
    code, again = generate(tmp_path, ["skiing", "surfing"])
    assert code == 0 and server.calls == {}
    assert again == first
    assert len([r for r in read_manifest(tmp_path / "manifest.jsonl") if r["status"] == "ok"]) == 6


def test_one_new_class_makes_calls_for_that_class_only(server, tmp_path):
    generate(tmp_path, ["skiing", "surfing"])
    server.reset_counts()
    code, priors = generate(tmp_path, ["skiing", "surfing", "rowing"])
    assert code == 0
    assert server.calls == {"chat": 1, "images": 2}
    assert classes_called(server) == {"rowing"}
    assert list(priors["classes"]) == ["skiing", "surfing", "rowing"]
    # priors.json holds exactly this run's classes.
    _, priors = generate(tmp_path, ["rowing"])
    assert list(priors["classes"]) == ["rowing"]


def test_changing_the_image_backend_does_not_regenerate_texts(server, tmp_path):
    _, with_openai = generate(tmp_path, ["skiing"])
    server.reset_counts()
    code, with_offline = generate(tmp_path, ["skiing"], image_backend="offline")
    assert code == 0 and server.calls == {}
    assert with_offline["classes"]["skiing"]["texts"] == with_openai["classes"]["skiing"]["texts"]
    assert set(with_offline["classes"]["skiing"]["images"]).isdisjoint(with_openai["classes"]["skiing"]["images"])
    _, back = generate(tmp_path, ["skiing"])
    assert server.calls == {} and back == with_openai


def test_what_determines_an_item_is_in_its_key(server, tmp_path):
    generate(tmp_path, ["skiing"])
    server.reset_counts()
    generate(tmp_path, ["skiing"], image_size=64)  # new images, same texts
    assert server.calls == {"images": 2}
    server.reset_counts()
    generate(tmp_path, ["skiing"], seed=1)  # everything new
    assert server.calls == {"chat": 1, "images": 2}
    server.reset_counts()
    generate(tmp_path, ["skiing"], k=3)
    assert server.calls == {"chat": 1, "images": 3}
    server.reset_counts()
    generate(tmp_path, ["skiing"], text_model="gpt-4o-mini")
    assert server.calls == {"chat": 1, "images": 2}  # new texts, so new image prompts


def test_an_unreadable_cached_item_is_made_again(server, tmp_path):
    generate(tmp_path, ["skiing"])
    text_file = next((tmp_path / "texts").rglob("*.json"))
    text_file.write_text('{"texts": ["cut off')
    server.reset_counts()
    code, _ = generate(tmp_path, ["skiing"])
    assert code == 0 and server.calls == {"chat": 1}  # same sentences again, so the images are cached


def test_a_truncated_cached_image_is_made_again(server, tmp_path):
    generate(tmp_path, ["skiing"])
    images = sorted((tmp_path / "images").rglob("*.png"))
    images[0].write_bytes(images[0].read_bytes()[:100])  # non-empty, but no longer decodes
    server.reset_counts()
    code, _ = generate(tmp_path, ["skiing"])
    assert code == 0 and server.calls == {"images": 1}
    from PIL import Image

    with Image.open(images[0]) as image:
        image.load()


def cli(out: Path, classes: int, server) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test-cache-0123456789",
           "HF_HUB_OFFLINE": "1"}
    names = ",".join(f"class {i:02d}" for i in range(classes))
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.generate", "--classes", names, "--out", str(out), "--k", "2",
         "--text-backend", "openai", "--image-backend", "openai", "--concurrency", "2"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """A suite started in the background (`make test &`) ignores SIGINT, and a child inherits that: Python then
    installs no Ctrl-C handler. Restore the default, as in an interactive shell, before the CLI starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_items(out: Path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        manifest = out / "manifest.jsonl"
        if manifest.is_file() and len(manifest.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} items made in {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_keeps_everything_it_made(server, tmp_path, sig):
    server.hold_after(6)
    process = cli(tmp_path, 12, server)
    wait_for_items(tmp_path, 6)
    server.wait_until_holding()  # the run waits on its 7th answer: it cannot finish before the signal
    process.send_signal(sig)
    server.release()  # the requests in flight finish, and are kept
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    first = dict(server.calls)
    assert sum(first.values()) < 12 * 3
    made = {r["key"] for r in read_manifest(tmp_path / "manifest.jsonl") if r["status"] == "ok"}
    server.reset_counts()
    process = cli(tmp_path, 12, server)
    process.communicate(timeout=60)
    assert process.returncode == 0
    # Only what was missing is asked for: nothing is generated twice.
    assert first.get("chat", 0) + server.calls["chat"] == 12
    assert first.get("images", 0) + server.calls["images"] == 24
    again = {r["key"] for r in read_manifest(tmp_path / "manifest.jsonl") if r["status"] == "ok"}
    assert len(again) == 36 and made < again


def test_a_killed_run_leaves_no_half_written_item(server, tmp_path):
    server.hold_after(8)
    process = cli(tmp_path, 12, server)
    wait_for_items(tmp_path, 8)
    server.wait_until_holding()
    process.kill()
    process.communicate(timeout=60)
    assert len(read_manifest(tmp_path / "manifest.jsonl")) < 36 and not (tmp_path / "priors.json").exists()
    server.release()
    process = cli(tmp_path, 12, server)
    process.communicate(timeout=60)
    assert process.returncode == 0
    priors = json.loads((tmp_path / "priors.json").read_text())
    assert len(priors["classes"]) == 12
    for path in (tmp_path / "images").rglob("*.png"):
        with Image.open(path) as image:
            image.load()
            assert image.size == (224, 224)
    cache = PriorCache(tmp_path)
    for record in read_manifest(tmp_path / "manifest.jsonl"):
        if record["kind"] == "text":
            assert cache.load_texts(record["class"], record["key"], 2) is not None
