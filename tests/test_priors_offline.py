"""The offline backends: deterministic, varied, readable sentences and pictures of the described scene."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from pipeline.data.demo_vocab import COLORS, MOTIONS, all_classes, parse_class
from pipeline.priors.config import build_config
from pipeline.priors.image_offline import render
from pipeline.priors.names import humanize
from pipeline.priors.text_offline import MOTION_WORDS, describe


def sentences(name: str, k: int = 4, seed: int = 0) -> list[str]:
    return describe(name, humanize(name), k, seed)


@pytest.mark.parametrize("name, words", [("CleanAndJerk", (15, 32)), ("Baton twirling", (15, 32)),
                                         ("circle rises", (8, 24)), ("Ping-pong", (15, 32)), ("Skiing", (15, 32))])
def test_sentences_are_deterministic_varied_and_of_the_right_length(name, words):
    texts = sentences(name)
    assert texts == sentences(name)
    assert texts != sentences(name, seed=1)
    assert describe(name, humanize(name), 4, 0, attempt=1) != texts  # a retry asks for other sentences
    assert len(set(texts)) == 4
    assert len({" ".join(t.split()[:3]) for t in texts}) >= 3  # not one template four times
    for text in texts:
        assert words[0] <= len(text.split()) <= words[1]
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


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def test_demo_sentences_name_shape_and_motion_early_and_fit_the_limits():
    """The demo CLIP reads 32 BPE tokens: shape and direction come first, the whole stays short. No colour: the
    world's actors take any colour of its palette. The motion is described in the encoder's words, also for the
    classes whose names use words its pretraining never saw ("drifts west", "plummets")."""
    cfg = build_config(None)
    for name in all_classes():
        shape, motion = parse_class(name)
        for seed in range(5):
            for text in sentences(name, k=8, seed=seed):
                head = _words(text)[:13]
                assert shape in head and not set(_words(text)) & set(COLORS), text
                assert set(head) & set(MOTION_WORDS[motion]), text
                assert cfg.min_words <= len(text.split()) <= min(24, cfg.max_words), text
                others = {w for m, words in MOTION_WORDS.items() if m != motion for w in words}
                assert not set(_words(text)) & others - set(MOTION_WORDS[motion]), text


def test_demo_sentences_are_worded_variously():
    texts = [t for seed in range(6) for t in sentences("triangle plummets", k=4, seed=seed)]
    openings = {" ".join(t.split()[:2]) for t in texts}
    verbs = {w for t in texts for w in _words(t)} & {"falls", "drops", "sinks", "descends", "glides", "moves"}
    assert len(openings) >= 5 and len(verbs) >= 4
    details = ("trail", "blur", "streak", "dark", "still", "pause", "steadily", "slowly", "smoothly")
    assert sum(any(d in t for d in details) for t in texts) >= len(texts) // 2


def test_demo_sentences_share_motion_words_across_classes():
    # The words for "rises" recur whatever the shape (what lets a model compose an unseen shape-motion pair),
    # while each shape's word stays its own.
    words = {name: {w for t in sentences(name, k=6) for w in re.findall(r"[a-z]+", t.lower())}
             for name in ("circle rises", "triangle rises", "square rises")}
    shared = set.intersection(*words.values())
    assert shared & {"up", "upward", "rises"}
    assert "circle" not in words["triangle rises"] and "triangle" not in words["square rises"]


@pytest.mark.parametrize("name", ["surfing", "circle rises"])
def test_images_are_deterministic_rgb_and_vary(name):
    text = sentences(name)[0]
    first = render(name, text, 5, 224)
    assert first.mode == "RGB" and first.size == (224, 224)
    assert np.array_equal(np.asarray(first), np.asarray(render(name, text, 5, 224)))
    assert not np.array_equal(np.asarray(first), np.asarray(render(name, text, 6, 224)))
    assert not np.array_equal(np.asarray(first), np.asarray(render(name, sentences(name)[1], 5, 224)))


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _actor_masks(pixels: np.ndarray, color: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(solid shape, faded trail): pixels on the line from the background to the actor's colour, near its end
    or part way along it (ghosts are the colour blended into the frame; distractors lie off that line)."""
    background = np.median(pixels.reshape(-1, 3), axis=0)
    offset = pixels - background
    axis = np.array(color, float) - background
    t = offset @ axis / (axis @ axis)
    residual = np.linalg.norm(offset - t[..., None] * axis, axis=-1)
    on_line = residual < np.maximum(12.0, 0.2 * np.linalg.norm(offset, axis=-1))
    return on_line & (t > 0.8), on_line & (t > 0.12) & (t < 0.6)


@pytest.mark.parametrize("size", [224, 64])
@pytest.mark.parametrize("name", ["circle rises", "square plummets", "cross drifts west", "triangle slides right",
                                  "triangle plummets", "cross rises"])
def test_demo_images_show_the_shape_ahead_of_its_trail(name, size):
    """The motion's static cue lies behind the shape, opposite to its motion, also at the 64 px the demo CLIP
    reads."""
    _shape, motion = parse_class(name)
    direction = np.array(MOTIONS[motion])
    for seed, text in enumerate(sentences(name, k=6)):
        image = render(name, text, seed, 224)
        pixels = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC)).astype(float)
        # the actor takes any palette colour: the one with the largest solid shape
        solid, trail = max((_actor_masks(pixels, c) for c in COLORS.values()), key=lambda m: m[0].sum())
        assert solid.sum() > 5 and trail.sum() > 5, (name, text)
        lead = (_centroid(solid) - _centroid(trail)) @ direction
        assert lead > 0.03 * size, (name, text, lead)
        assert np.median(pixels) < 60  # a dark frame, like the demo videos


def test_demo_images_vary_in_place_size_and_company():
    name, color = "circle slides right", COLORS["teal"]
    places, sizes, distractors = [], [], 0
    for seed in range(12):
        pixels = np.asarray(render(name, "A teal circle slides right.", seed, 224)).astype(float)
        solid, _ = _actor_masks(pixels, color)
        places.append(_centroid(solid))
        sizes.append(solid.sum())
        distractors += any((np.abs(pixels - c).sum(-1) < 40).sum() > 20 for c in COLORS.values() if c != color)
    assert np.std(places, axis=0).min() > 15
    assert max(sizes) > 1.5 * min(sizes)
    assert 0 < distractors < 12  # sometimes a distractor shape of the world, as the videos have


def test_demo_images_take_the_colour_the_sentence_names_first():
    pixels = np.asarray(render("square rises", "A maroon square rises past a grey ring.", 0, 224)).astype(float)
    solid, _ = _actor_masks(pixels, COLORS["maroon"])
    assert solid.sum() > 100


def test_editing_an_offline_backend_makes_new_items_instead_of_reusing_old_ones(tmp_path, monkeypatch):
    """The offline backends' output is their code: their item keys hold a digest of its source, so a rerun after
    an edit regenerates (before, old sentences and pictures came back from the item cache)."""
    import io
    import json

    from rich.console import Console

    from pipeline.priors import image_offline, text_offline
    from pipeline.priors.generation import run

    cfg = build_config(None, overrides={"out": tmp_path, "k": 2})

    def keys() -> set[str]:
        assert run(cfg, ["circle rises"], console=Console(file=io.StringIO())) == 0
        return {json.loads(line)["key"] for line in (tmp_path / "manifest.jsonl").read_text().splitlines()}

    first = keys()
    assert keys() == first  # unchanged code: everything is reused
    real = text_offline.source_digest
    monkeypatch.setattr(text_offline, "source_digest", lambda *names: "edited" + real(*names))
    after_text_edit = keys()
    assert len(after_text_edit - first) == 1  # the texts are made again (the same sentences: pictures reused)
    monkeypatch.setattr(image_offline, "source_digest", lambda *names: "edited" + real(*names))
    assert len(keys() - after_text_edit) == 2  # the same sentences, drawn anew
