"""The seeded image-caption corpus the demo world's CLIP is pretrained on: stills and captions, no video.

Each still shows one captioned object (any shape of the world, actor or distractor shape, in any colour, so
colour never stands in for shape) drawn with the world's own ``draw_shape`` on a background of the world's
style, usually with one or two smaller distractors (the world's ring and diamond). Motion appears only as a
static cue: the world's ``draw_motion_trail`` behind the object. A still is drawn at the video frame size and
resized to the model's input size with PIL bicubic, as the extractor's preprocessing does.

Still ``i`` is a pure function of (config, i): its own generator is seeded from ``[seed, STREAM, i]``, a seed
stream the demo world never uses (its videos seed with ``[demo.seed, subset, n]`` and ``[demo.seed, 99]``), so
the corpus can be rendered in parallel chunks and is disjoint from the videos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from pipeline.data import demo_vocab as vocab
from pipeline.data.demo import world_background

STREAM = 0x5EED_C11B  # the corpus's seed stream: [seed, STREAM, still] and [seed, STREAM + 1, background]

ACTOR_SHAPES = vocab.SHAPES
ALL_SHAPES = vocab.SHAPES + vocab.DISTRACTOR_SHAPES
COLOR_NAMES = tuple(vocab.COLORS)
MOTION_NAMES = tuple(vocab.MOTIONS)

SHAPE_WORDS = {
    "square": ("square", "square block", "filled square", "solid square"),
    "circle": ("circle", "round circle", "filled circle", "solid circle", "disc"),
    "triangle": ("triangle", "pointed triangle", "filled triangle", "solid triangle"),
    "cross": ("cross", "plus-shaped cross", "filled cross", "solid cross", "plus sign"),
    "ring": ("ring", "hollow ring", "thin ring", "hoop"),
    "diamond": ("diamond", "rhombus", "filled diamond", "solid diamond"),
}
MOTION_WORDS = {
    "slides left": ("slides left", "moving left", "sliding left", "moves to the left", "drifts leftward",
                    "glides toward the left edge", "slides steadily to the left"),
    "slides right": ("slides right", "moving right", "sliding right", "moves to the right", "drifts rightward",
                     "glides toward the right edge", "slides steadily to the right"),
    "rises": ("rises", "rising", "moving up", "moves upward", "drifts upward", "climbs up toward the top edge",
              "rises slowly upward"),
    "falls": ("falls", "falling", "moving down", "moves downward", "sinks downward",
              "drops down toward the bottom edge", "falls steadily downward"),
}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big")}
PREFIXES = ("a", "a", "a photo of a", "a picture of a", "an image of a", "a video of a", "a still of a",
            "a frame showing a", "there is a", "this shows a")
PLACES = {("middle", "centre"): "in the centre", ("middle", "left"): "on the left",
          ("middle", "right"): "on the right", ("top", "centre"): "at the top", ("bottom", "centre"): "at the bottom"}
TRAIL_CLAUSES = ("leaving a faint fading trail behind it", "with a trail of fading copies behind it",
                 "its blurred trail showing where it came from")
SCENE_CLAUSES = ("on a dark, slightly grainy background", "in a dark video frame", "over a dim grey background",
                 "on a plain dark canvas", "while the rest of the dark scene stays still")
MOTION_CLAUSES = ("in one smooth and steady movement", "at an even pace", "along a straight path")


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 0
    n_stills: int = 30000
    frame_size: int = 128  # the demo world's frame size: stills are drawn at it, then resized
    image_size: int = 64  # the model's input size
    min_radius: float = 7.0
    max_radius: float = 14.0
    distractor_radius: tuple[float, float] = (5.0, 10.0)
    distractor_counts: tuple[float, ...] = (0.0, 0.5, 0.5)  # P(0, 1, 2, ... distractors)
    trail_prob: float = 0.5
    mention_distractor_prob: float = 0.3
    long_caption_prob: float = 0.3  # captions with extra clauses, so every text position is trained
    n_backgrounds: int = 64


@dataclass(frozen=True)
class Still:
    """What one still shows: the captioned object and its surroundings."""

    shape: str
    color: str
    radius: float
    x: float
    y: float
    motion: str | None  # the direction its trail shows; None: no trail
    distractors: tuple[tuple[str, str, float, float, float], ...]  # (shape, colour, radius, x, y)
    background: int


def still_rng(cfg: CorpusConfig, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, STREAM, index])


def backgrounds(cfg: CorpusConfig) -> np.ndarray:
    """(n_backgrounds, F, F, 3) uint8 backgrounds of the world's kind, from the corpus's own seeds."""
    return np.stack([world_background(np.random.default_rng([cfg.seed, STREAM + 1, i]), cfg.frame_size)
                     for i in range(cfg.n_backgrounds)]).astype(np.uint8)


def sample_still(rng: np.random.Generator, cfg: CorpusConfig, shape: str, color: str) -> Still:
    """Place a `shape` of `color`, maybe with a motion trail, and its distractors, none overlapping it."""
    f = cfg.frame_size
    radius = float(rng.uniform(cfg.min_radius, cfg.max_radius))
    motion = MOTION_NAMES[rng.integers(len(MOTION_NAMES))] if rng.random() < cfg.trail_prob else None
    margin = radius * 1.4 + 2
    x, y = (float(v) for v in rng.uniform(margin, f - margin, size=2))
    distractors = []
    for _ in range(int(rng.choice(len(cfg.distractor_counts), p=cfg.distractor_counts))):
        d_shape = vocab.DISTRACTOR_SHAPES[rng.integers(len(vocab.DISTRACTOR_SHAPES))]
        d_color = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
        d_radius = float(rng.uniform(*cfg.distractor_radius))
        dx, dy = (float(v) for v in rng.uniform(d_radius * 1.4, f - d_radius * 1.4, size=2))
        if np.hypot(dx - x, dy - y) < 1.6 * (radius + d_radius):
            continue  # it would overlap the captioned object
        distractors.append((d_shape, d_color, d_radius, dx, dy))
    return Still(shape, color, radius, x, y, motion, tuple(distractors), int(rng.integers(cfg.n_backgrounds)))


def render_still(still: Still, cfg: CorpusConfig, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The still as (S, S, 3) uint8 at the model's input size: drawn at frame size with sensor noise, resized."""
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image, "RGBA")
    for shape, color, radius, x, y in still.distractors:
        vocab.draw_shape(draw, shape, x, y, radius, vocab.COLORS[color])
    rgb = vocab.COLORS[still.color]
    if still.motion is not None:
        vocab.draw_motion_trail(draw, still.shape, still.x, still.y, still.radius, rgb, still.motion)
    vocab.draw_shape(draw, still.shape, still.x, still.y, still.radius, rgb)
    noise = rng.integers(-3, 4, size=(cfg.frame_size, cfg.frame_size, 3), dtype=np.int16)
    frame = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(frame)
    if cfg.image_size != cfg.frame_size:
        image = image.resize((cfg.image_size, cfg.image_size), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[rng.integers(len(words))]


def size_word(radius: float) -> str | None:
    return "small" if radius < 9 else "large" if radius > 12 else None


def place_words(x: float, y: float, frame: int) -> str:
    row = ("top", "middle", "bottom")[min(2, int(3 * y / frame))]
    col = ("left", "centre", "right")[min(2, int(3 * x / frame))]
    return PLACES.get((row, col), f"at the {row} {col}")


def caption(rng: np.random.Generator, still: Still, cfg: CorpusConfig) -> str:
    """A varied caption that always names the object's colour and shape, and sometimes its size, place,
    motion cue and a distractor; some carry extra clauses up to ~30 words."""
    size = size_word(still.radius)
    size_text = pick(rng, SIZE_WORDS[size]) + " " if size and rng.random() < 0.4 else ""
    shape = pick(rng, SHAPE_WORDS[still.shape]) if rng.random() < 0.3 else still.shape
    if rng.random() < 0.15:  # colour after the shape, so its position in the sentence varies
        text = f"{pick(rng, PREFIXES)} {size_text}{shape} coloured {still.color}"
    else:
        text = f"{pick(rng, PREFIXES)} {size_text}{still.color} {shape}"
    if still.motion is not None:
        text += f" {pick(rng, MOTION_WORDS[still.motion])}"
    if rng.random() < 0.4:
        text += f" {place_words(still.x, still.y, cfg.frame_size)}"
    long = rng.random() < cfg.long_caption_prob
    if long and still.motion is not None:
        text += f" {pick(rng, MOTION_CLAUSES)}, {pick(rng, TRAIL_CLAUSES)}"
    if long:
        text += f" {pick(rng, SCENE_CLAUSES)}"
    if still.distractors and (long or rng.random() < cfg.mention_distractor_prob):
        d_shape, d_color = still.distractors[0][:2]
        text += f", next to a {d_color} {d_shape}" if rng.random() < 0.5 else f" and a {d_color} {d_shape}"
        if len(still.distractors) > 1 and long:
            d_shape, d_color = still.distractors[1][:2]
            text += f" and a {d_color} {d_shape}"
    return _articles(text)


def _articles(text: str) -> str:
    """'a' before a vowel becomes 'an'."""
    words = text.split(" ")
    return " ".join("an" if w == "a" and i + 1 < len(words) and words[i + 1][:1] in "aeiou" else w
                    for i, w in enumerate(words))


def combos(index: int, cfg: CorpusConfig) -> tuple[str, str]:
    """(shape, colour) of still `index`: shuffled rounds of every combination, so any stretch of the corpus
    shows every shape in many colours and every colour on many shapes."""
    pairs = [(s, c) for s in ALL_SHAPES for c in COLOR_NAMES]
    rnd, pos = divmod(index, len(pairs))
    order = np.random.default_rng([cfg.seed, STREAM + 2, rnd]).permutation(len(pairs))
    return pairs[order[pos]]


def make_stills(cfg: CorpusConfig, start: int, stop: int, pool: np.ndarray | None = None
                ) -> tuple[np.ndarray, list[str], list[Still]]:
    """Stills start..stop-1: images (n, S, S, 3) uint8, captions and descriptions."""
    pool = backgrounds(cfg) if pool is None else pool
    images = np.empty((stop - start, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    captions, stills = [], []
    for row, index in enumerate(range(start, stop)):
        rng = still_rng(cfg, index)
        still = sample_still(rng, cfg, *combos(index, cfg))
        images[row] = render_still(still, cfg, pool[still.background], rng)
        captions.append(caption(rng, still, cfg))
        stills.append(still)
    return images, captions, stills
