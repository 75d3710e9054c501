"""The openai text and image backends against a real HTTP server on 127.0.0.1, through the openai SDK."""

from __future__ import annotations

import io
import json

import pytest
from fakes.fake_openai import FakeOpenAI
from PIL import Image
from rich.console import Console

from pipeline.common import UserError
from pipeline.priors.config import build_config
from pipeline.priors.generation import run
from pipeline.priors.manifest import read_manifest

API_KEY = "sk-test-0123456789abcdefghij"


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAI(hang_s=1.0) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        yield fake


def config(out, **overrides):
    settings = {"out": out, "text_backend": "openai", "image_backend": "openai", "k": 2, "concurrency": 1,
                "backoff_s": 0.001, "timeout_s": 2.0, "max_retries": 2, "malformed_retries": 2}
    settings.update(overrides)
    return build_config(None, overrides=settings)


def generate(cfg, classes):
    console = Console(file=io.StringIO(), width=200)
    code = run(cfg, classes, console=console)
    return code, console.file.getvalue()


def priors(out):
    return json.loads((out / "priors.json").read_text())


def manifest(out, **match):
    return [r for r in read_manifest(out / "manifest.jsonl") if all(r.get(k) == v for k, v in match.items())]


def test_success_makes_one_text_call_and_k_image_calls(server, tmp_path):
    code, _ = generate(config(tmp_path, k=3, seed=7), ["CleanAndJerk"])
    assert code == 0
    assert server.calls == {"chat": 1, "images": 3}
    chat = next(r for r in server.requests if r["endpoint"] == "chat")
    assert chat["model"] == "gpt-4o" and chat["seed"] == 7
    assert chat["response_format"]["json_schema"]["strict"] is True
    schema = chat["response_format"]["json_schema"]["schema"]["properties"]["descriptions"]
    assert schema["type"] == "array" and "exactly 3" in schema["description"]
    assert '"clean and jerk"' in chat["messages"][1]["content"]
    images = [r for r in server.requests if r["endpoint"] == "images"]
    assert all(r["n"] == 1 and r["model"] == "dall-e-3" and r["response_format"] == "b64_json" for r in images)
    entry = priors(tmp_path)["classes"]["CleanAndJerk"]
    assert len(entry["texts"]) == 3
    # Image i's prompt is built from sentence i.
    assert [r["prompt"] for r in images] == [f"A realistic photograph of clean and jerk: {t}" for t in entry["texts"]]
    for path in entry["images"]:
        with Image.open(tmp_path / path) as image:
            assert image.mode == "RGB" and image.size == (224, 224)
    text = manifest(tmp_path, kind="text")[0]
    assert text["request_id"] == "req_chat_1" and text["attempts"] == 1
    assert text["usage"]["prompt_tokens"] == 120 and text["usage"]["completion_tokens"] == 120
    assert text["cost_usd"] == pytest.approx((120 * 2.5 + 120 * 10.0) / 1e6)
    assert [r["cost_usd"] for r in manifest(tmp_path, kind="image")] == [0.04] * 3
    assert server.headers[0]["authorization"] == f"Bearer {API_KEY}"


def test_the_api_key_is_written_nowhere(server, tmp_path):
    server.script("chat", "auth")
    with pytest.raises(UserError) as err:
        generate(config(tmp_path), ["skiing"])
    assert err.value.where == "OPENAI_API_KEY" and "401" in err.value.problem
    generate(config(tmp_path), ["skiing"])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_a_key_echoed_in_a_successful_answer_is_stored_nowhere(server, tmp_path):
    server.script("chat", "echo_key", "echo_key")
    code, _ = generate(config(tmp_path), ["skiing", "surfing"])
    assert code == 0
    texts = [t for entry in priors(tmp_path)["classes"].values() for t in entry["texts"]]
    assert len(texts) == 4 and all(t.endswith("Your key is [redacted].") for t in texts)
    stored = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(p.parent.parent.name == "texts" for p in stored)
    for path in stored:
        assert API_KEY.encode() not in path.read_bytes(), path
    image_prompts = [r["prompt"] for r in server.requests if r["endpoint"] == "images"]
    assert image_prompts and not any(API_KEY in p for p in image_prompts)


def test_rate_limit_then_success_is_retried(server, tmp_path):
    server.script("chat", "429", "ok")
    server.script("images", "429", "429", "ok")
    code, _ = generate(config(tmp_path, k=1), ["skiing"])
    assert code == 0
    assert server.calls == {"chat": 2, "images": 3}
    assert manifest(tmp_path, kind="text")[0]["attempts"] == 2
    assert manifest(tmp_path, kind="image")[0]["attempts"] == 3


def test_server_errors_exhaust_the_retries_and_are_reported(server, tmp_path):
    server.script("chat", "500", "500", "500", match="skiing")
    code, output = generate(config(tmp_path, max_retries=2), ["skiing", "surfing"])
    assert code == 1
    assert server.calls["chat"] == 4  # 3 tries for skiing, 1 for surfing
    assert list(priors(tmp_path)["classes"]) == ["surfing"]
    failed = manifest(tmp_path, kind="text", status="transient")
    assert len(failed) == 1 and failed[0]["class"] == "skiing" and failed[0]["attempts"] == 3
    assert "HTTP 500" in failed[0]["error"]
    assert "skiing" in output and "texts" in output and "transient: HTTP 500" in output


def test_a_timeout_is_retried(server, tmp_path):
    server.script("chat", "hang", "ok")
    code, _ = generate(config(tmp_path, timeout_s=0.5), ["skiing"])
    assert code == 0
    # (More than 2 calls only if this machine is so loaded that a normal answer also took over 0.5 s.)
    assert server.calls["chat"] >= 2
    assert manifest(tmp_path, kind="text")[0]["attempts"] == server.calls["chat"]


def test_timeouts_that_persist_fail_the_item(server, tmp_path):
    server.script("images", "hang", "hang")
    code, output = generate(config(tmp_path, timeout_s=0.3, max_retries=1, k=1), ["skiing"])
    assert code == 1
    assert "timed out after 0.3 s" in output
    assert priors(tmp_path)["classes"] == {}


def test_a_refusal_is_recorded_and_the_batch_goes_on(server, tmp_path):
    server.script("chat", "refusal", match="skiing")
    code, output = generate(config(tmp_path), ["skiing", "surfing"])
    assert code == 1
    assert server.calls["chat"] == 2  # a refusal is not retried
    assert list(priors(tmp_path)["classes"]) == ["surfing"]
    refused = manifest(tmp_path, status="refused")
    assert len(refused) == 1 and "can't help" in refused[0]["error"] and refused[0]["request_id"].startswith("req_chat")
    assert "refused" in output


def test_an_image_content_policy_rejection_is_recorded(server, tmp_path):
    server.script("images", "content_policy", match="Scene 2 of")
    code, output = generate(config(tmp_path), ["skiing"])
    assert code == 1
    assert server.calls["images"] == 2  # not retried
    assert "image 2" in output and "content policy" in output
    assert manifest(tmp_path, kind="image", status="refused")[0]["index"] == 1
    assert len(manifest(tmp_path, kind="image", status="ok")) == 1


@pytest.mark.parametrize("bad", ["malformed_json", "wrong_count", "too_long"])
def test_malformed_text_is_retried(server, tmp_path, bad):
    server.script("chat", bad, "ok")
    code, _ = generate(config(tmp_path), ["skiing"])
    assert code == 0
    assert server.calls["chat"] == 2
    record = manifest(tmp_path, kind="text")[0]
    # Both answers were billed.
    assert record["attempts"] == 2 and record["usage"]["prompt_tokens"] == 240


def test_malformed_text_that_persists_is_recorded(server, tmp_path):
    server.script("chat", "malformed_json", "malformed_json", "malformed_json")
    code, output = generate(config(tmp_path, malformed_retries=2), ["skiing"])
    assert code == 1
    assert server.calls == {"chat": 3}
    failed = manifest(tmp_path, status="malformed")[0]
    assert "not JSON" in failed["error"] and failed["usage"]["prompt_tokens"] == 360
    assert "malformed" in output


def test_an_image_that_does_not_decode_is_retried(server, tmp_path):
    server.script("images", "bad_image")
    code, _ = generate(config(tmp_path, k=1), ["skiing"])
    assert code == 0
    assert server.calls["images"] == 2


def test_a_missing_api_key_is_a_user_error(server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(UserError) as err:
        generate(config(tmp_path), ["skiing"])
    assert err.value.where == "OPENAI_API_KEY"
    assert server.calls == {}


def test_concurrent_requests_are_bounded(server, tmp_path):
    server.delay_s = 0.1
    code, _ = generate(config(tmp_path, concurrency=3, k=4), [f"class {i}" for i in range(6)])
    assert code == 0
    assert server.calls == {"chat": 6, "images": 24}
    assert server.max_in_flight["chat"] <= 3 and server.max_in_flight["images"] <= 3
    assert server.max_in_flight["images"] == 3
