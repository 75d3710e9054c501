"""The offline text backend: varied, deterministic descriptions, no network and no model.

Demo-world classes ("circle rises") get what an LLM writes when asked for short descriptions of a video of
the action: the shape and the direction of motion early in the sentence in varied wording, then
sometimes the pace, the trail, the dark frame or the still moments around the motion. The words of a motion
recur across shapes, so a model can compose an unseen "triangle rises" from "triangle slides left" and
"circle rises". Any other class gets natural sentences about a person doing the action in varied settings.
"""

from __future__ import annotations

import hashlib
import random

from pipeline.data.demo_vocab import parse_class
from pipeline.priors.cache import source_digest
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import Usage

# The demo-world sentences are put together the way an LLM words "k short descriptions of what a video of
# 'circle rises' shows": shape and direction of motion come first (the demo CLIP reads 32 tokens), then
# sometimes how it moves, the trail the motion leaves, the dark frame, the still moments around the motion.
SHAPE_ADJECTIVES = ("", "", "small", "bright", "solid", "flat", "single", "plain")
MOTION_VERBS = {  # (present tense, -ing form); every phrase holds a direction word of MOTION_WORDS
    "rises": (("rises", "rising"), ("moves upward", "moving upward"), ("drifts up", "drifting up"),
              ("glides upward", "gliding upward"), ("travels up the frame", "travelling up the frame"),
              ("climbs up toward the top", "climbing up toward the top"), ("floats upward", "floating upward")),
    "falls": (("falls", "falling"), ("moves downward", "moving downward"), ("drops down", "dropping down"),
              ("sinks down toward the bottom", "sinking down toward the bottom"), ("descends", "descending"),
              ("slides down the frame", "sliding down the frame"), ("glides downward", "gliding downward")),
    "slides left": (("slides left", "sliding left"), ("moves to the left", "moving to the left"),
                    ("glides leftward", "gliding leftward"), ("heads left across the frame", "heading left across "
                                                                                             "the frame"),
                    ("drifts left toward the edge", "drifting left toward the edge"),
                    ("slides leftward across the frame", "sliding leftward across the frame")),
    "slides right": (("slides right", "sliding right"), ("moves to the right", "moving to the right"),
                     ("glides rightward", "gliding rightward"), ("heads right across the frame", "heading right "
                                                                                                 "across the frame"),
                     ("drifts right toward the edge", "drifting right toward the edge"),
                     ("slides rightward across the frame", "sliding rightward across the frame")),
}
MOTION_WORDS = {
    "rises": ("rises", "rising", "up", "upward"),
    "falls": ("falls", "falling", "down", "downward", "descends", "descending"),
    "slides left": ("left", "leftward"),
    "slides right": ("right", "rightward"),
}
DESTINATIONS = {"rises": "near the top", "falls": "near the bottom", "slides left": "on the left side",
                "slides right": "on the right side"}
PACES = ("slowly", "steadily", "smoothly", "at an even pace", "in a straight line", "at a moderate speed", "")
TRAILS = ("leaving a faint, fading trail behind it", "with a soft motion blur trailing behind",
          "trailing a few faded copies of itself", "with a blurred streak marking its path")
BACKDROPS = ("a dark background", "a dim, grainy backdrop", "a plain dark screen", "a dark, empty scene")
DEMO_FORMS = (
    "{A} {np} {vp} {pace}, {trail}.",
    "Against {backdrop}, {a} {np} {vp} {pace}.",
    "The video shows {a} {np} {ving} {pace} on {backdrop}.",
    "{A} {np} sits still, then {vp} {pace} and stops.",
    "{A} {np} {vp} {pace} while the rest of the dark scene stays still.",
    "We see {a} {np} {ving} {pace}, {trail}.",
    "In this clip, {a} {np} {vp} and comes to rest {destination} of the frame.",
    "A short clip of {a} {np} {ving} {pace}, {trail}.",
    "{A} {np} {vp} {pace}; a faint blur behind it shows the way it came.",
    "Footage of {a} {np} that {vp}, pausing briefly before and after it moves.",
    "Only one thing moves: {a} {np} {vp} {pace} against {backdrop}.",
    "After a brief pause, {a} {np} {vp} {pace} and then holds still {destination}.",
)
MAX_DEMO_WORDS = 24  # the demo CLIP reads 32 BPE tokens


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
    """k sentences about ``shape`` moving ``motion``; no colour: a demo actor takes any colour of the palette."""
    forms = _spread(DEMO_FORMS, k, rng)
    verbs = _spread(MOTION_VERBS[motion], k, rng)
    return [_shape_sentence(form, shape, verb, motion, rng) for form, verb in zip(forms, verbs, strict=True)]


def _shape_sentence(form: str, shape: str, verb: tuple[str, str], motion: str, rng: random.Random) -> str:
    """One sentence of ``form``; its free details are drawn again while it is longer than MAX_DEMO_WORDS, and
    left out at last."""
    present, gerund = verb
    for attempt in range(6):
        last = attempt == 5
        adjective = "" if last else rng.choice(SHAPE_ADJECTIVES)
        text = form.format(
            a="a", A="A", np=" ".join(w for w in (adjective, shape) if w), vp=present, ving=gerund,
            pace="" if last else rng.choice(PACES), trail=TRAILS[1] if last else rng.choice(TRAILS),
            backdrop=BACKDROPS[0] if last else rng.choice(BACKDROPS), destination=DESTINATIONS[motion],
        )
        text = " ".join(text.split()).replace(" ,", ",").replace(" ;", ";").replace(" .", ".")
        if len(text.split()) <= MAX_DEMO_WORDS:
            break
    return text


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
        return {"code": source_digest(__name__, "pipeline.data.demo_vocab")}

    def generate(self, request):
        from pipeline.priors.backends import TextResult

        return TextResult(describe(request.class_name, request.action, request.k, request.seed, request.attempt,
                                   self.max_words))

    def estimate(self, messages, k) -> Usage:
        return Usage()
