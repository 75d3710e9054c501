"""Held-out zero-shot accuracy of a CLIP model on stills drawn the way the demo world's video frames are.

A held-out still is a video frame of a demo world (`demo.seed` 0-7: that world's own fixed background), drawn as
`pipeline.data.demo.render_frames` draws one: one actor shape (radius 7-14 px at 128 px) in any of the six
colours, one or two distractors (ring or diamond, in the distractor colours) and Gaussian sensor noise; the
motion-cue set adds the world's motion trail behind the actor. The frame is resized to the model's input size
with PIL bicubic, as the extractor's preprocessing does. None of it comes from the corpus's seed stream.

A class's text embedding is the normalised mean of its prompts' (prompt ensembling over the other attributes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from pipeline.data import demo_vocab as vocab
from pipeline.data.demo import world_background
from pipeline.pretraining.corpus import ACTOR_SHAPES, ALL_SHAPES, COLOR_NAMES, MOTION_NAMES

EVAL_SEED = 424242
WORLD_SEEDS = 8
MOTION_PROMPTS = {"slides left": ("slides left", "moving left"), "slides right": ("slides right", "moving right"),
                  "rises": ("rises", "moving up"), "falls": ("falls", "moving down")}
CHANCE = {"shape": 1 / len(ACTOR_SHAPES), "color": 1 / len(COLOR_NAMES), "motion": 1 / len(MOTION_NAMES)}


def video_like_frame(rng: np.random.Generator, shape: str, color: str, motion: str | None, world_seed: int,
                     frame: int = 128) -> np.ndarray:
    """A (frame, frame, 3) uint8 frame as the demo world renders one, plus a trail when `motion` is given."""
    background = world_background(np.random.default_rng([world_seed, 99]), frame)
    image = Image.new("RGB", (frame, frame))
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(int(rng.integers(1, 3))):
        d_shape = vocab.DISTRACTOR_SHAPES[rng.integers(len(vocab.DISTRACTOR_SHAPES))]
        d_color = vocab.COLORS[COLOR_NAMES[rng.integers(len(COLOR_NAMES))]]
        vocab.draw_shape(draw, d_shape, *rng.uniform(20, frame - 20, size=2), float(rng.uniform(6, 10)), d_color)
    radius = float(rng.uniform(7, 14))
    x, y = (float(v) for v in rng.uniform(radius * 2, frame - radius * 2, size=2))
    rgb = vocab.COLORS[color]
    if motion is not None:
        vocab.draw_motion_trail(draw, shape, x, y, radius, rgb, motion)
    vocab.draw_shape(draw, shape, x, y, radius, rgb)
    shapes = np.asarray(image, dtype=np.float32)
    mask = shapes.any(axis=2, keepdims=True)
    out = np.where(mask, shapes, background) + rng.normal(0, 2, size=shapes.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def held_out_set(image_size: int, n: int, with_motion: bool, seed: int = EVAL_SEED
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """n stills (n, S, S, 3) uint8 cycling through every actor shape x colour (x motion), and their labels."""
    rng = np.random.default_rng(seed)
    motions = MOTION_NAMES if with_motion else (None,)
    combos = [(s, c, m) for s in range(len(ACTOR_SHAPES)) for c in range(len(COLOR_NAMES))
              for m in range(len(motions))]
    images, labels = [], {"shape": [], "color": [], "motion": []}
    for i in range(n):
        s, c, m = combos[i % len(combos)]
        frame = video_like_frame(rng, ACTOR_SHAPES[s], COLOR_NAMES[c], motions[m], world_seed=i // len(combos)
                                 % WORLD_SEEDS)
        images.append(np.asarray(Image.fromarray(frame).resize((image_size, image_size), Image.BICUBIC)))
        for key, value in (("shape", s), ("color", c), ("motion", m)):
            labels[key].append(value)
    return np.stack(images), {k: np.array(v) for k, v in labels.items()}


@torch.no_grad()
def class_embeddings(encode_text: Callable[[list[str]], torch.Tensor], prompts: list[list[str]]) -> torch.Tensor:
    """(C, E): per class, the normalised mean of its prompts' normalised embeddings."""
    out = []
    for class_prompts in prompts:
        emb = torch.nn.functional.normalize(encode_text(class_prompts).float(), dim=-1).mean(0)
        out.append(emb / emb.norm())
    return torch.stack(out)


def shape_prompts(shapes: tuple[str, ...] = ACTOR_SHAPES) -> list[list[str]]:
    return [[f"a {c} {s}" for c in COLOR_NAMES] for s in shapes]


def color_prompts() -> list[list[str]]:
    return [[f"a {c} {s}" for s in ALL_SHAPES] for c in COLOR_NAMES]


def motion_prompts() -> list[list[str]]:
    return [[f"a {c} {s} {w}" for c in COLOR_NAMES for s in ACTOR_SHAPES for w in MOTION_PROMPTS[m]]
            for m in MOTION_NAMES]


def accuracy(image_emb: torch.Tensor, class_emb: torch.Tensor, labels: np.ndarray) -> float:
    pred = (torch.nn.functional.normalize(image_emb.float(), dim=-1) @ class_emb.T).argmax(1).numpy()
    return float((pred == labels).mean())


@torch.no_grad()
def evaluate(encode_images: Callable[[np.ndarray], torch.Tensor],
             encode_text: Callable[[list[str]], torch.Tensor], image_size: int, n: int = 480) -> dict[str, float]:
    """Zero-shot accuracy on `n` held-out stills: shape (the 4 actor shapes), colour (6), and on `n` more with a
    motion trail, its direction (4)."""
    images, labels = held_out_set(image_size, n, with_motion=False)
    emb = encode_images(images)
    m_images, m_labels = held_out_set(image_size, n, with_motion=True, seed=EVAL_SEED + 1)
    m_emb = encode_images(m_images)
    return {"shape": accuracy(emb, class_embeddings(encode_text, shape_prompts()), labels["shape"]),
            "color": accuracy(emb, class_embeddings(encode_text, color_prompts()), labels["color"]),
            "motion": accuracy(m_emb, class_embeddings(encode_text, motion_prompts()), m_labels["motion"]),
            "n": n}


def model_encoders(model: torch.nn.Module, tokenizer: Callable, normalize: Callable
                   ) -> tuple[Callable[[np.ndarray], torch.Tensor], Callable[[list[str]], torch.Tensor]]:
    """`evaluate`'s image and text encoders for an open_clip model in eval mode (in its own dtype)."""
    dtype = next(model.parameters()).dtype

    def images(stills: np.ndarray) -> torch.Tensor:
        return torch.cat([model.encode_image(normalize(torch.from_numpy(stills[i:i + 256])).to(dtype)).float()
                          for i in range(0, len(stills), 256)])

    def texts(prompts: list[str]) -> torch.Tensor:
        return model.encode_text(tokenizer(prompts)).float()

    return images, texts
