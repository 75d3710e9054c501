"""The demo world's vocabulary: shapes, motions and colours, and how a shape is drawn.

Shared by the demo-world video generator and the offline image backend, so that a generated prior picture
of "circle rises" shows the same kind of circle the videos contain.
"""

from __future__ import annotations

import math

from PIL import ImageDraw

SHAPES = ("square", "circle", "triangle", "cross")

# Unit direction of travel per second, in image coordinates (y grows downwards).
MOTIONS = {
    "slides left": (-1.0, 0.0),
    "slides right": (1.0, 0.0),
    "rises": (0.0, -1.0),
    "falls": (0.0, 1.0),
}

COLORS = {
    "red": (220, 50, 47),
    "green": (60, 180, 75),
    "blue": (38, 110, 220),
    "yellow": (235, 200, 40),
    "magenta": (200, 60, 200),
    "cyan": (40, 200, 210),
}

# Each actor shape has its own colour (as a kind of object has its look); distractors use the others.
SHAPE_COLORS = {"square": "blue", "circle": "red", "triangle": "green", "cross": "yellow"}
DISTRACTOR_COLORS = ("magenta", "cyan")

# Shapes that appear only as distractors, never as an action's actor.
DISTRACTOR_SHAPES = ("ring", "diamond")

# The open-set splits of the demo world: split j holds out one Latin diagonal of the shape x motion grid,
# so every unseen class is a new combination of a shape and a motion that seen classes use.
N_SPLITS = len(SHAPES)


def unseen_classes(split_id: int) -> list[str]:
    motions = list(MOTIONS)
    if not 0 <= split_id < N_SPLITS:
        raise ValueError(f"the demo world has splits 0..{N_SPLITS - 1}, not {split_id}")
    return sorted(class_name(shape, motions[(i + split_id) % len(motions)]) for i, shape in enumerate(SHAPES))

def class_name(shape: str, motion: str) -> str:
    return f"{shape} {motion}"


def all_classes() -> list[str]:
    return sorted(class_name(s, m) for s in SHAPES for m in MOTIONS)


def parse_class(name: str) -> tuple[str, str] | None:
    """(shape, motion) for a demo-world class name, None for any other text."""
    for shape in SHAPES:
        for motion in MOTIONS:
            if name.strip().lower() == class_name(shape, motion):
                return shape, motion
    return None


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, size: float,
               color: tuple[int, int, int], angle: float = 0.0) -> None:
    """Draw a filled shape of radius ``size`` centred on (cx, cy), rotated by ``angle`` radians."""
    r = size
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=max(2, int(r / 3)))
    elif shape in ("square", "diamond", "triangle"):
        corners = {"square": 4, "diamond": 4, "triangle": 3}[shape]
        offset = {"square": math.pi / 4, "diamond": 0.0, "triangle": -math.pi / 2}[shape] + angle
        radius = r * (1.35 if shape == "square" else 1.2)
        points = [
            (cx + radius * math.cos(offset + 2 * math.pi * i / corners),
             cy + radius * math.sin(offset + 2 * math.pi * i / corners))
            for i in range(corners)
        ]
        draw.polygon(points, fill=color)
    elif shape == "cross":
        w = r / 2.5
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=color)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def draw_motion_trail(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, size: float,
                      color: tuple[int, int, int], motion: str, ghosts: int = 4, spacing: float = 0.7,
                      angle: float = 0.0) -> None:
    """The static cue of a motion in a still: fading ghost copies of the shape behind it, opposite to its
    direction of travel, as a long exposure of a moving object shows. ``draw`` must be an RGBA draw
    (``ImageDraw.Draw(image, "RGBA")``); draw the shape itself on top afterwards. ``spacing`` is the gap between
    ghosts in radii. Shared by the encoder's pretraining corpus and the offline image backend, so the cue a
    prior image shows is the one the demo CLIP learnt to read."""
    dx, dy = MOTIONS[motion]
    for i in range(ghosts, 0, -1):
        back = i * size * spacing
        alpha = int(150 * (1 - i / (ghosts + 1)))
        draw_shape(draw, shape, cx - dx * back, cy - dy * back, size, (*color, alpha), angle)
