"""The offline image backend: a deterministic still picture of the described scene, no network, no model.

For a demo-world class the picture shows the class's shape in the colour its sentence names, on a dark
frame like the demo videos, with a fading trail behind it (opposite to the motion) as the motion cue. For
any other class it paints an abstract scene seeded by the sentence: a backdrop chosen from the setting the
sentence names, a few objects and a posed stick figure, so images are real, varied and stable.
"""

from __future__ import annotations

import hashlib
import math
import random
import re

from PIL import Image, ImageDraw, ImageFilter

from pipeline.data.demo_vocab import COLORS, MOTIONS, SHAPE_COLORS, draw_shape, parse_class
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import Usage

SUPERSAMPLE = 2
FRAME_BACKGROUND = (18, 20, 26)
TRAIL_STEPS = 6

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
    words = set(re.findall(r"[a-z]+", sentence.lower()))
    return next((name for name in COLORS if name in words), None)


def render_shape_scene(shape: str, motion: str, sentence: str, seed: int, size: int) -> Image.Image:
    rng = _rng("shape", shape, motion, sentence, seed)
    side = size * SUPERSAMPLE
    image = Image.new("RGB", (side, side), FRAME_BACKGROUND)
    draw = ImageDraw.Draw(image)
    # Faint horizontal bands and speckles, like a compressed dark video frame.
    for y in range(0, side, 4 * SUPERSAMPLE):
        shade = _blend(FRAME_BACKGROUND, (34, 36, 44), rng.random() * 0.5)
        draw.rectangle([0, y, side, y + 2 * SUPERSAMPLE], fill=shade)
    for _ in range(side // 2):
        x, y = rng.randrange(side), rng.randrange(side)
        draw.point((x, y), fill=_blend(FRAME_BACKGROUND, (70, 72, 80), rng.random()))

    color_name = _named_color(sentence) or SHAPE_COLORS.get(shape) or rng.choice(list(COLORS))
    color = COLORS[color_name]
    radius = side * rng.uniform(0.07, 0.11)
    dx, dy = MOTIONS[motion]
    spacing = radius * rng.uniform(0.45, 0.7)
    trail = spacing * TRAIL_STEPS
    # Place the shape so that it and its trail stay inside the frame.
    margin = radius * 1.5
    lo_x = margin + max(0.0, dx * trail)
    hi_x = side - margin + min(0.0, dx * trail)
    lo_y = margin + max(0.0, dy * trail)
    hi_y = side - margin + min(0.0, dy * trail)
    cx, cy = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
    angle = rng.uniform(-0.15, 0.15)
    for step in range(TRAIL_STEPS, 0, -1):
        fade = 0.25 + 0.6 * step / TRAIL_STEPS
        ghost = _blend(color, FRAME_BACKGROUND, fade)
        draw_shape(draw, shape, cx - dx * spacing * step, cy - dy * spacing * step, radius * (1 - 0.04 * step),
                   ghost, angle)
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
        return {"sentence": request.sentence}

    def generate(self, request):
        from pipeline.priors.backends import ImageResult

        return ImageResult(render(request.class_name, request.sentence, request.seed + request.attempt, self.size))

    def estimate(self) -> Usage:
        return Usage()
