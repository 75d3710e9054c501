"""The offline image backend: a deterministic still picture of the described scene, no network, no model.

For a demo-world class the picture shows what a generated image of the action would: the class's shape in the
colour its sentence names, on a dark frame like the demo videos', with the static cue of its motion behind it
(``demo_vocab.draw_motion_trail``, the cue the demo encoder's pretraining corpus uses), varied per image in
position, size, trail and rotation, sometimes with a distractor shape of the world. For
any other class it paints an abstract scene seeded by the sentence: a backdrop chosen from the setting the
sentence names, a few objects and a posed stick figure, so images are real, varied and stable.
"""

from __future__ import annotations

import hashlib
import math
import random
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.data.demo import world_background
from pipeline.data.demo_vocab import (
    COLORS,
    DISTRACTOR_SHAPES,
    MOTIONS,
    draw_motion_trail,
    draw_shape,
    parse_class,
)
from pipeline.priors.cache import source_digest
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import Usage

SUPERSAMPLE = 2
# The demo videos' geometry (``data.demo``), in pixels of their frame: an actor's and a distractor's radius.
DEMO_FRAME = 128
ACTOR_RADIUS = (9.0, 14.0)
DISTRACTOR_RADIUS = (6.0, 10.0)
DISTRACTOR_PROB = 0.5

# Backdrop (sky, ground) colours by a word of the setting the sentence describes.
BACKDROPS = {
    "beach": ((250, 170, 110), (225, 200, 150)),
    "snowy": ((170, 200, 230), (240, 244, 250)),
    "lake": ((150, 195, 235), (60, 110, 160)),
    "field": ((140, 190, 240), (90, 150, 70)),
    "park": ((150, 200, 240), (80, 140, 70)),
    "backyard": ((160, 205, 235), (95, 145, 80)),
    "street": ((175, 185, 195), (90, 90, 95)),
    "hall": ((200, 190, 170), (170, 120, 80)),
    "gym": ((210, 200, 180), (180, 130, 85)),
    "studio": ((235, 235, 230), (200, 200, 195)),
    "room": ((220, 205, 180), (150, 110, 80)),
}


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _named_color(sentence: str) -> str | None:
    """The first colour word of the sentence (the actor's: sentences name it before anything else)."""
    for word in re.findall(r"[a-z]+", sentence.lower()):
        if word in COLORS:
            return word
    return None


def _frame_background(rng: random.Random, size: int, side: int) -> Image.Image:
    """A dark frame of the demo videos' kind (the world's own background recipe, ``data.demo.world_background``), drawn
    at the output size so its grain survives the supersampled drawing."""
    pixels = world_background(np.random.default_rng(rng.getrandbits(32)), size).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").resize((side, side), Image.Resampling.NEAREST)


def _trail_box(cx: float, cy: float, reach: float, motion: str, back: float) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1) that holds a shape of extent ``reach`` at (cx, cy) and its trail ``back`` long."""
    dx, dy = MOTIONS[motion]
    tx, ty = cx - dx * back, cy - dy * back
    return min(cx, tx) - reach, min(cy, ty) - reach, max(cx, tx) + reach, max(cy, ty) + reach


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render_shape_scene(shape: str, motion: str, sentence: str, seed: int, size: int) -> Image.Image:
    """The still a generated image of "<shape> <motion>" would show: the shape in a palette colour (the one the
    sentence names, else any), its motion's static cue (``demo_vocab.draw_motion_trail``) behind it, on a dark
    video-like frame, sometimes with a distractor."""
    rng = _rng("shape", shape, motion, sentence, seed)
    side = size * SUPERSAMPLE
    scale = side / DEMO_FRAME
    image = _frame_background(rng, size, side)
    draw = ImageDraw.Draw(image, "RGBA")

    color = COLORS[_named_color(sentence) or rng.choice(list(COLORS))]  # a world actor's colour is any
    radius = rng.uniform(*ACTOR_RADIUS) * scale
    ghosts = rng.randint(3, 5)  # around draw_motion_trail's defaults (4, 0.7), the encoder's pretraining cue
    spacing = rng.uniform(0.55, 0.85)
    angle = rng.uniform(-0.2, 0.2)
    back = ghosts * spacing * radius
    # Place the shape so that it and its trail stay inside the frame.
    reach = radius * 1.4
    x0, y0, x1, y1 = _trail_box(0.0, 0.0, reach, motion, back)
    cx = rng.uniform(-x0 + 2, side - x1 - 2)
    cy = rng.uniform(-y0 + 2, side - y1 - 2)
    actor_box = _trail_box(cx, cy, reach, motion, back)

    if rng.random() < DISTRACTOR_PROB:
        d_shape = rng.choice(DISTRACTOR_SHAPES)
        d_color = COLORS[rng.choice(list(COLORS))]
        d_radius = rng.uniform(*DISTRACTOR_RADIUS) * scale
        for _ in range(20):  # somewhere clear of the actor and its trail, as a still's bystander
            px, py = (rng.uniform(d_radius * 1.5, side - d_radius * 1.5) for _ in range(2))
            if not _overlaps(_trail_box(px, py, d_radius * 1.6, motion, 0.0), actor_box):
                draw_shape(draw, d_shape, px, py, d_radius, d_color)
                break

    draw_motion_trail(draw, shape, cx, cy, radius, color, motion, ghosts=ghosts, spacing=spacing, angle=angle)
    draw_shape(draw, shape, cx, cy, radius, color, angle)
    image = image.filter(ImageFilter.GaussianBlur(SUPERSAMPLE * 0.4))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def render_action_scene(sentence: str, seed: int, size: int) -> Image.Image:
    rng = _rng("action", sentence, seed)
    side = size * SUPERSAMPLE
    words = set(re.findall(r"[a-z]+", sentence.lower()))
    random_backdrop = (tuple(rng.randrange(90, 230) for _ in range(3)), tuple(rng.randrange(40, 170) for _ in range(3)))
    sky, ground = next((pair for word, pair in BACKDROPS.items() if word in words), random_backdrop)
    horizon = int(side * rng.uniform(0.45, 0.7))
    image = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(image)
    for y in range(side):
        if y < horizon:
            draw.line([(0, y), (side, y)], fill=_blend(sky, (255, 255, 255), 0.35 * y / horizon))
        else:
            draw.line([(0, y), (side, y)], fill=_blend(ground, (0, 0, 0), 0.3 * (y - horizon) / (side - horizon)))
    for _ in range(rng.randint(3, 6)):
        color = tuple(rng.randrange(30, 240) for _ in range(3))
        x, y = rng.uniform(0, side), rng.uniform(horizon * 0.5, side)
        w, h = side * rng.uniform(0.05, 0.2), side * rng.uniform(0.04, 0.15)
        if rng.random() < 0.5:
            draw.ellipse([x - w, y - h, x + w, y + h], fill=color)
        else:
            draw.rectangle([x - w, y - h, x + w, y + h], fill=color)
    _stick_figure(draw, rng, side, horizon)
    image = image.filter(ImageFilter.GaussianBlur(SUPERSAMPLE * 0.5))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _stick_figure(draw: ImageDraw.ImageDraw, rng: random.Random, side: int, horizon: int) -> None:
    """A person in a random pose: the actor of the described action."""
    height = side * rng.uniform(0.3, 0.45)
    feet_y = min(side * 0.95, horizon + height * rng.uniform(0.2, 0.5))
    x = side * rng.uniform(0.3, 0.7)
    hip = (x, feet_y - height * 0.45)
    neck = (x + rng.uniform(-0.1, 0.1) * height, feet_y - height * 0.85)
    head_r = height * 0.08
    color = tuple(rng.randrange(0, 90) for _ in range(3))
    width = max(2, int(height * 0.04))

    def limb(start: tuple[float, float], length: float, angle: float) -> tuple[float, float]:
        end = (start[0] + length * math.sin(angle), start[1] + length * math.cos(angle))
        draw.line([start, end], fill=color, width=width)
        return end

    draw.line([hip, neck], fill=color, width=width)
    draw.ellipse([neck[0] - head_r, neck[1] - 2.2 * head_r, neck[0] + head_r, neck[1]], fill=color)
    for side_sign in (-1, 1):
        elbow = limb(neck, height * 0.22, side_sign * rng.uniform(0.3, 2.8))
        limb(elbow, height * 0.2, side_sign * rng.uniform(0.0, 3.0))
        knee = limb(hip, height * 0.25, side_sign * rng.uniform(0.05, 0.8))
        limb(knee, height * 0.22, side_sign * rng.uniform(-0.2, 0.5))


def render(class_name: str, sentence: str, seed: int, size: int) -> Image.Image:
    parsed = parse_class(class_name)
    if parsed is not None:
        return render_shape_scene(*parsed, sentence, seed, size)
    return render_action_scene(sentence, seed, size)


class OfflineImageBackend:
    name = "offline"
    remote = False
    uses_prompt = False  # it draws the sentence itself (shape, colour, setting), whatever the prompt template

    def __init__(self, cfg: GenerateConfig):
        self.model = cfg.resolved_image_model
        self.size = cfg.image_size

    def key_fields(self, request) -> dict:
        code = source_digest(__name__, "pipeline.data.demo_vocab", "pipeline.data.demo")
        return {"sentence": request.sentence, "code": code}

    def generate(self, request):
        from pipeline.priors.backends import ImageResult

        return ImageResult(render(request.class_name, request.sentence, request.seed + request.attempt, self.size))

    def estimate(self) -> Usage:
        return Usage()
