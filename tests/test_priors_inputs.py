"""Class names as keys and in prompts, class sources, settings, prices and retry timing."""

from __future__ import annotations

import json
import random

import pytest

from pipeline.common import UserError
from pipeline.priors import classes as sources
from pipeline.priors.config import DEFAULT_TEXT_PROMPT, build_config
from pipeline.priors.faults import MalformedOutput, RetryPolicy, TransientError, redact
from pipeline.priors.keys import content_key, item_seed
from pipeline.priors.names import file_slug, humanize
from pipeline.priors.pricing import image_cost, text_cost
from pipeline.priors.validate import check_sentences, clean_sentence

AWKWARD = ["CleanAndJerk", "Baton twirling", "Skiing", "skiing", "Café au lait", "Rock/paper/scissors",
           "rock paper scissors", "..", "TV Watching", "滑雪", "a" * 300, " spaced out "]


@pytest.mark.parametrize("name, reads", [
    ("CleanAndJerk", "clean and jerk"), ("BasketballDunk", "basketball dunk"), ("Baton twirling", "baton twirling"),
    ("Blow-drying hair", "blow-drying hair"), ("playing_guitar", "playing guitar"), ("TV Watching", "TV watching"),
    ("Rock/paper", "rock or paper"), ("Crème brûlée", "crème brûlée"), ("circle rises", "circle rises"),
])
def test_humanize_reads_naturally(name, reads):
    assert humanize(name) == reads


def test_file_slugs_are_file_names_and_unique(tmp_path):
    keys = [file_slug(name) for name in AWKWARD]
    assert len(set(keys)) == len(keys)
    assert len({key.lower() for key in keys}) == len(keys)  # safe on case-insensitive file systems
    for key in keys:
        assert key.isascii() and "/" not in key and not key.startswith(".") and len(key) <= 60
        (tmp_path / key).mkdir()
    assert file_slug("CleanAndJerk").startswith("clean-and-jerk-")
    assert file_slug("Café au lait").startswith("cafe-au-lait-")


def test_content_keys_ignore_field_order_and_see_every_value():
    assert content_key({"a": 1, "b": "x"}) == content_key({"b": "x", "a": 1})
    assert content_key({"a": 1, "b": "x"}) != content_key({"a": 1, "b": "y"})
    assert item_seed(0, "skiing", 0) == item_seed(0, "skiing", 0)
    assert len({item_seed(0, "skiing", i) for i in range(4)} | {item_seed(1, "skiing", 0)}) == 5


def test_class_lists_and_files(tmp_path):
    assert sources.from_list(" skiing, surfing ,skiing,,") == ["skiing", "surfing"]
    path = tmp_path / "classes.txt"
    path.write_text("# my classes\nCleanAndJerk\n\nCafé au lait\nCleanAndJerk\n", encoding="utf-8")
    assert sources.from_file(path) == ["CleanAndJerk", "Café au lait"]
    with pytest.raises(UserError, match="not found"):
        sources.from_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UserError, match="no class names"):
        sources.from_file(tmp_path / "empty.txt")


def test_classes_of_a_shipped_split():
    seen = sources.from_split("thumos14", "75_25", 3, "seen")
    unseen = sources.from_split("THUMOS14", "75_25", 3, "unseen")
    assert (len(seen), len(unseen)) == (15, 5) and not set(seen) & set(unseen)
    assert sources.from_split("thumos14", "75_25", 3) == seen + unseen
    assert len(sources.from_split("activitynet", "50_50", 0)) == 200
    with pytest.raises(UserError, match="no split 42"):
        sources.from_split("thumos14", "75_25", 42)
    with pytest.raises(UserError, match="unknown data set"):
        sources.from_split("kinetics", "75_25", 0)


def test_classes_of_an_index(tmp_path):
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"schema": 1, "classes": ["b", "a"], "videos": {}}))
    assert sources.from_index(index) == ["b", "a"]
    index.write_text(json.dumps({"schema": 1, "videos": {}}))
    with pytest.raises(UserError, match="'classes' list"):
        sources.from_index(index)


def test_settings_merge_and_validate():
    cfg = build_config({"k": 8, "text_backend": "openai"}, "p.yaml", {"k": 2, "seed": None})
    assert (cfg.k, cfg.text_backend, cfg.seed, cfg.resolved_text_model) == (2, "openai", 0, "gpt-4o")
    with pytest.raises(UserError, match=r"^p.yaml: generate.kk: unknown key \(did you mean 'k'\?\)$"):
        build_config({"kk": 3}, "p.yaml")
    with pytest.raises(UserError, match="generate.k: expected an integer >= 1, got 'four'"):
        build_config({"k": "four"}, "p.yaml")
    with pytest.raises(UserError, match="^--image-backend: generate.image_backend: expected one of .*, "
                                         "got 'midjourney'"):
        build_config(None, overrides={"image_backend": "midjourney"})
    with pytest.raises(UserError, match=r"generate.text_prompt: expected a template with "
                                         r"placeholders .*, not \{class\}"):
        build_config({"text_prompt": DEFAULT_TEXT_PROMPT + " {class}"}, "p.yaml")
    with pytest.raises(UserError, match="openworld_dir"):
        build_config(None, overrides={"image_backend": "openworld"})
    with pytest.raises(UserError, match="generate.min_words: expected an integer <= generate.max_words"):
        build_config({"min_words": 50, "max_words": 10}, "p.yaml")


def test_prices_are_looked_up_by_model_family():
    assert text_cost("gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.5)
    assert text_cost("gpt-4o-mini-2024-07-18", 0, 1_000_000) == pytest.approx(0.6)
    assert text_cost("my-local-llm", 10, 10) is None
    assert image_cost("dall-e-3", None, "1024x1024") == pytest.approx(0.04)
    assert image_cost("dall-e-3", "hd", "1792x1024") == pytest.approx(0.12)
    assert image_cost("gpt-image-1", "auto", "1024x1024") == pytest.approx(0.042)
    assert image_cost("dall-e-3", "standard", "640x480") is None


def test_backoff_grows_is_capped_and_obeys_retry_after():
    policy = RetryPolicy(max_retries=3, backoff_s=1.0, backoff_max_s=5.0, rng=random.Random(0))
    delays = [policy.delay(retry) for retry in range(1, 6)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert all(d <= 5.0 for d in delays)
    assert policy.delay(1, retry_after=2.5) == 2.5 and policy.delay(1, retry_after=60) == 5.0
    assert policy.allows(TransientError("x"), 3, 0) and not policy.allows(TransientError("x"), 4, 0)
    assert policy.allows(MalformedOutput("x"), 0, 2) and not policy.allows(MalformedOutput("x"), 0, 3)


def test_keys_are_redacted(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "secret-value-123456")
    text = redact("bad key secret-value-123456 and sk-proj-abcdefghijklmnop")
    assert "secret-value-123456" not in text and "abcdefghijklmnop" not in text
    assert TransientError("key sk-proj-abcdefghijklmnop").detail.count("abcdefghijklmnop") == 0


def test_sentence_checks():
    assert clean_sentence('1. "A person skis down a slope."') == "A person skis down a slope."
    assert clean_sentence("- two  spaces\nand a line") == "two spaces and a line"
    good = ["one two three four five six", "six five four three two one"]
    assert check_sentences(good, 2, 6, 10) == good
    for bad, problem in [(good[:1], "expected 2 sentences"), ([good[0], "too short"], "at least 6"),
                         ([good[0], "word " * 11], "at most 10"), ([good[0], good[0]], "repeat"),
                         ("not a list", "list of strings")]:
        with pytest.raises(MalformedOutput, match=problem):
            check_sentences(bad, 2, 6, 10)
