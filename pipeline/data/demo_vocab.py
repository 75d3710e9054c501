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

# Every actor and distractor takes a colour of this palette, whatever its shape, so colour never names a shape.
# The colours are muted (no channel above 160): a flow image (grizal.encoders.flow_colors) always has a channel at
# 255, so no flow image shows an actor's colour and a CLIP that reads colour cannot read flow as a shape.
COLORS = {
    "grey": (150, 150, 150),
    "brown": (150, 95, 50),
    "olive": (130, 140, 50),
    "teal": (40, 130, 130),
    "purple": (120, 70, 160),
    "maroon": (150, 40, 60),
}

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

# The words a class name uses for its motion. Two motions are named by words the demo CLIP's pretraining captions
# never use (pipeline.pretraining.corpus): the name alone tells a model little about them, as "CleanAndJerk" tells
# CLIP little, and only the generated sentences and images (which describe the motion in words the encoder knows,
# and draw it) say what they mean.
CLASS_WORDS = {"slides left": "drifts west", "slides right": "slides right", "rises": "rises", "falls": "plummets"}


def class_name(shape: str, motion: str) -> str:
    return f"{shape} {CLASS_WORDS[motion]}"


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
