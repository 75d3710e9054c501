"""The offline backends: deterministic, varied, readable sentences and pictures of the described scene."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.data.demo_vocab import COLORS, all_classes
from pipeline.priors.image_offline import FRAME_BACKGROUND, render
from pipeline.priors.names import humanize
from pipeline.priors.text_offline import MOTION_PHRASES, describe


def sentences(name: str, k: int = 4, seed: int = 0) -> list[str]:
    return describe(name, humanize(name), k, seed)


@pytest.mark.parametrize("name", ["CleanAndJerk", "Baton twirling", "circle rises", "Ping-pong", "Skiing"])
def test_sentences_are_deterministic_varied_and_of_the_right_length(name):
    texts = sentences(name)
    assert texts == sentences(name)
    assert texts != sentences(name, seed=1)
    assert len(set(texts)) == 4
    assert len({" ".join(t.split()[:3]) for t in texts}) >= 3  # not one template four times
    for text in texts:
        assert 15 <= len(text.split()) <= 32
        assert text[0].isupper() and text.endswith(".")
        assert text.lower() != humanize(name).lower()


@pytest.mark.parametrize("words", [40, 45, 120])
def test_long_action_texts_give_valid_sentences_through_a_run(tmp_path, words):
    """A 40+ word action used to exceed max_words in every sentence, so the offline run failed."""
    import io

    from rich.console import Console

    from pipeline.priors.config import build_config
    from pipeline.priors.generation import run

    action = " ".join(f"step{i}" for i in range(words))
    cfg = build_config(None, overrides={"out": tmp_path, "k": 3})
    assert run(cfg, [action], console=Console(file=io.StringIO())) == 0
    import json

    texts = json.loads((tmp_path / "priors.json").read_text())["classes"][action]["texts"]
    assert len(texts) == 3 and all(cfg.min_words <= len(t.split()) <= cfg.max_words for t in texts)
    assert all("step0 step1 step2" in t for t in texts)


def test_class_names_read_naturally_in_sentences():
    texts = sentences("CleanAndJerk")
    assert all("clean and jerk" in t.lower() for t in texts)
    assert not any("CleanAndJerk" in t for t in texts)


def test_demo_sentences_name_the_shape_and_share_motion_words_across_classes():
    for name in all_classes():
        shape, motion = name.split(" ", 1)
        for text in sentences(name, k=6):
            assert shape in text
            assert any(phrase in text for phrase in MOTION_PHRASES[motion])
            assert any(color in text.split() for color in COLORS)
    # The words for "rises" recur whatever the shape (what lets a model compose an unseen shape-motion pair),
    # while each shape's word stays its own.
    words = {name: {w for t in sentences(name, k=6) for w in re.findall(r"[a-z]+", t.lower())}
             for name in ("circle rises", "triangle rises", "square rises")}
    shared = set.intersection(*words.values())
    assert shared & {"up", "upward", "rises"}
    assert "circle" not in words["triangle rises"] and "triangle" not in words["square rises"]


def test_images_are_deterministic_rgb_and_vary():
    text = sentences("surfing")[0]
    first = render("surfing", text, 5, 224)
    assert first.mode == "RGB" and first.size == (224, 224)
    assert np.array_equal(np.asarray(first), np.asarray(render("surfing", text, 5, 224)))
    assert not np.array_equal(np.asarray(first), np.asarray(render("surfing", text, 6, 224)))
    assert not np.array_equal(np.asarray(first), np.asarray(render("surfing", sentences("surfing")[1], 5, 224)))


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("name, axis, sign", [("circle rises", 1, -1), ("square falls", 1, 1),
                                              ("cross slides left", 0, -1), ("triangle slides right", 0, 1)])
def test_demo_images_show_the_named_colour_ahead_of_its_trail(name, axis, sign):
    for seed, text in enumerate(sentences(name)):
        color = next(c for c in COLORS if c in text.split())
        pixels = np.asarray(render(name, text, seed, 224)).astype(int)
        full = np.abs(pixels - np.array(COLORS[color])).sum(-1) < 40
        drawn = np.abs(pixels - np.array(FRAME_BACKGROUND)).sum(-1) > 60
        assert full.sum() > 50, f"no {color} shape in the picture of {text!r}"
        # The solid shape leads; the faded trail lies behind it, opposite to the motion.
        lead = (_centroid(full) - _centroid(drawn))[axis] * sign
        assert lead > 2, (name, text)
        # A dark frame, like the demo videos.
        assert np.median(pixels) < 60
