"""The offline text backend: varied, deterministic descriptions from templates, no network and no model.

Demo-world classes ("circle rises") get sentences about the shape and its motion whose key words recur
across classes, so a model can compose an unseen "triangle rises" from "triangle slides left" and
"circle rises". Any other class gets natural sentences about a person doing the action in varied settings.
"""

from __future__ import annotations

import hashlib
import random

from pipeline.data.demo_vocab import SHAPE_COLORS, parse_class
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import Usage

SHAPE_PHRASES = {
    "circle": ("circle", "round circle", "filled circle", "solid circle"),
    "square": ("square", "square block", "filled square", "solid square"),
    "triangle": ("triangle", "pointed triangle", "filled triangle", "solid triangle"),
    "cross": ("cross", "plus-shaped cross", "filled cross", "solid cross"),
}
MOTION_PHRASES = {
    "rises": ("rises", "moves upward", "climbs up toward the top edge", "drifts upward", "rises slowly upward"),
    "falls": ("falls", "moves downward", "drops down toward the bottom edge", "sinks downward",
              "falls steadily downward"),
    "slides left": ("slides left", "moves to the left", "glides toward the left edge", "drifts leftward",
                    "slides steadily to the left"),
    "slides right": ("slides right", "moves to the right", "glides toward the right edge", "drifts rightward",
                     "slides steadily to the right"),
}
SHAPE_SETTINGS = (
    "across a dark, slightly grainy frame",
    "over a dim grey background",
    "in a dark video frame",
    "among a few motionless distractor shapes",
    "on a plain dark canvas",
    "while the rest of the dark scene stays still",
)
SHAPE_TEMPLATES = (
    "A {color} {shape} {motion} {setting}, leaving a faint fading trail behind it as it travels.",
    "The clip shows a {color} {shape} that {motion} in one smooth and steady movement {setting}.",
    "In this scene a {color} {shape} {motion}, starting near the middle of the picture and ending well away "
    "from where it began.",
    "We watch a {color} {shape} as it {motion} at an even pace {setting}.",
    "A single {color} {shape} {motion} {setting}; its path is straight and the motion lasts a few seconds.",
    "Against the dark backdrop, a {color} {shape} {motion} while the other shapes around it do not move.",
)

PEOPLE = ("a young man", "a woman", "an athlete", "a teenage girl", "a middle-aged man", "a skilled performer",
          "an older woman", "a boy")
SETTINGS = ("outdoors on a sunny afternoon", "in a crowded sports hall", "in a quiet backyard",
            "on a wide open field", "inside a brightly lit studio", "at a local park", "on a busy city street",
            "near the edge of a lake", "in a school gym", "on a beach at sunset", "on a snowy slope",
            "in a small living room")
VIEWPOINTS = ("a low angle", "the side", "a distance", "slightly above", "close range", "a handheld camera")
ACTION_TEMPLATES = (
    "A video of {action} {setting}: {person} moves through the whole motion from the first step to the finish.",
    "This clip shows {person} engaged in {action} {setting}, with the camera following every movement closely.",
    "{setting_cap}, {person} is seen in the middle of {action}, arms and legs working together in a fluid "
    "rhythm.",
    "The footage captures {action} {setting}; {person} gets ready, carries out the main movement, then relaxes.",
    "Filmed from {viewpoint}, the scene shows {person} taking part in {action} while a few people watch nearby.",
    "In a short recording made {setting}, {person} demonstrates {action} with practiced, confident movements.",
    "{person_cap} concentrates on {action} {setting}, and each phase of the motion is clearly visible.",
    "Seen from {viewpoint}, {person} practises {action} {setting}, repeating the key movement several times.",
)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def shape_sentences(shape: str, motion: str, k: int, rng: random.Random) -> list[str]:
    color = SHAPE_COLORS[shape]  # the demo world's actors have their shape's colour
    templates = _spread(SHAPE_TEMPLATES, k, rng)
    sentences = []
    for i, template in enumerate(templates):
        sentences.append(template.format(
            color=color,
            shape=SHAPE_PHRASES[shape][i % len(SHAPE_PHRASES[shape])] if i else shape,
            motion=rng.choice(MOTION_PHRASES[motion]),
            setting=rng.choice(SHAPE_SETTINGS),
        ))
    return sentences


def action_sentences(action: str, k: int, rng: random.Random, max_words: int = 60) -> list[str]:
    """k sentences about `action`; a long action text is cut to its first words so that each sentence stays
    within `max_words` (the template keeps at least the action's first word)."""
    templates = _spread(ACTION_TEMPLATES, k, rng)
    settings = _spread(SETTINGS, k, rng)
    sentences = []
    for template, setting in zip(templates, settings, strict=True):
        person = rng.choice(PEOPLE)
        fields = {"setting": setting, "setting_cap": _capitalize(setting), "person": person,
                  "person_cap": _capitalize(person), "viewpoint": rng.choice(VIEWPOINTS)}
        overhead = len(template.format(action="", **fields).split())
        words = action.split()
        fitted = " ".join(words[:max(1, max_words - overhead)])
        sentences.append(_capitalize(template.format(action=fitted, **fields)))
    return sentences


def _spread(options: tuple[str, ...], k: int, rng: random.Random) -> list[str]:
    """k choices, all different while there are enough options, then repeating a fresh shuffle."""
    picked: list[str] = []
    while len(picked) < k:
        batch = list(options)
        rng.shuffle(batch)
        picked.extend(batch)
    return picked[:k]


def describe(class_name: str, action: str, k: int, seed: int, attempt: int = 0, max_words: int = 60) -> list[str]:
    rng = _rng(class_name, seed, attempt)
    parsed = parse_class(class_name)
    if parsed is not None:
        return shape_sentences(*parsed, k, rng)
    return action_sentences(action, k, rng, max_words)


class OfflineTextBackend:
    name = "offline"
    remote = False

    def __init__(self, cfg: GenerateConfig):
        self.model = cfg.resolved_text_model
        self.max_words = cfg.max_words

    def messages(self, action: str, k: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{k} template descriptions of: {action}"}]

    def key_fields(self) -> dict:
        return {}

    def generate(self, request):
        from pipeline.priors.backends import TextResult

        return TextResult(describe(request.class_name, request.action, request.k, request.seed, request.attempt,
                                   self.max_words))

    def estimate(self, messages, k) -> Usage:
        return Usage()
