"""The demo world: a seeded, deterministic, labelled video data set written as real mp4 files.

Action classes are compositions of a shape and a motion ("circle rises"). Each video shows a few instances of
its main class (and sometimes one of another class) separated by background gaps. To make localization a
real problem, actors sit still for a moment before and after they move (so appearance alone does not give the
boundaries), idle actors of other shapes appear in the gaps, and distractor shapes wander all along on paths
no class uses. The open-set splits (``demo_vocab.unseen_classes``) hold out combinations whose words seen
classes use.

``render_world`` writes the mp4 files and the ActivityNet-format annotations; ``python -m pipeline.demo_world`` is
its door (the ``demo`` params section, checked by ``pipeline.params_schema``, -> ``DemoConfig``).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.common import atomic_write_json, die_with_parent
from pipeline.data import demo_vocab as vocab
from pipeline.params_schema import DemoWorld

ACTORS_FILE = "actors.json"
# actors.json: {"format", "seed", "size" (px), "fps", "videos": {id: {"duration", "actors", "wanderers"}}}.
# An actor: shape, color (RGB), radius (px), appear <= start <= end <= vanish (s: visible from appear to vanish,
# moving from start to end, still before and after), x0, y0 (px, its place until start), velocity (px/s while
# moving, [0, 0] for an idle actor), label (the class it performs; null for an idle actor). A wanderer (distractor
# on an ellipse, visible all along): shape, color, radius, cx, cy, ax, ay (px), period (s), phase (rad).
ACTORS_FORMAT = 1


class DemoConfig(DemoWorld):
    """The demo world's settings: keys, defaults and ranges are those of ``pipeline.params_schema.DemoWorld``."""

    @classmethod
    def from_section(cls, section: dict) -> DemoConfig:
        """From a checked ``demo`` section (``params_schema``); its ``out`` key is the stage's, not the world's."""
        return cls(**{name: value for name, value in section.items() if name in cls.model_fields})


@dataclass(frozen=True)
class Actor:
    shape: str
    color: tuple[int, int, int]
    radius: float
    appear: float  # seconds
    start: float  # motion starts (the ground-truth segment starts)
    end: float  # motion ends
    vanish: float
    x0: float
    y0: float
    velocity: tuple[float, float]  # px/s while moving; zero for idle actors
    label: str | None = None  # the action class it performs; None for an idle actor

    def position(self, t: float) -> tuple[float, float]:
        moving = min(max(t, self.start), self.end) - self.start
        return self.x0 + self.velocity[0] * moving, self.y0 + self.velocity[1] * moving


@dataclass(frozen=True)
class Wanderer:
    """A distractor on a closed loop path (an ellipse), a motion no action class has."""

    shape: str
    color: tuple[int, int, int]
    radius: float
    cx: float
    cy: float
    ax: float
    ay: float
    period: float
    phase: float

    def position(self, t: float) -> tuple[float, float]:
        angle = self.phase + 2 * math.pi * t / self.period
        return self.cx + self.ax * math.cos(angle), self.cy + self.ay * math.sin(angle)


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour of the palette, whatever the shape (``demo_vocab.COLORS``)."""
    names = list(vocab.COLORS)
    return vocab.COLORS[names[rng.integers(len(names))]]


# How the world keeps one cue from naming a class (issue 23; `python -m benchmarks.demo_world_cues` measures it):
# actors stand still for a while before and after they move, so "the shape is on screen" is not "the action is
# happening"; every video also shows its main shape making other motions (instances of the other classes of that
# shape, annotated, and idle actors drifting diagonally, a motion no class has), so "the shape moves" is not the
# action either: only the shape moving in the class's direction is.
STILL_SECONDS = (1.5, 4.0)  # still before the motion starts, and again after it ends
# Instances of the main shape's other classes per video (as many as fit), by subset: every test video shows its
# shape making other motions; a training video does so less often, since an open split trains only on videos
# free of its unseen classes (with (1, 2) here too, about a quarter of the training videos would remain).
SAME_SHAPE_INSTANCES = {"training": (0, 1), "validation": (1, 2)}
IDLE_MAIN_SHAPE = 0.6  # an idle actor has the main class's shape with this probability
IDLE_DRIFT = 0.5  # an idle actor drifts diagonally with this probability (else it stands still)


def _moving_actor(rng, cfg: DemoConfig, label: str, start: float, end: float) -> Actor:
    shape, motion = vocab.parse_class(label)
    dx, dy = vocab.MOTIONS[motion]
    radius = float(rng.uniform(9, 14))
    travel = float(rng.uniform(0.4, 0.55)) * cfg.size
    x0, y0 = _start_inside(rng, cfg, radius, dx * travel, dy * travel)
    speed = travel / (end - start)
    appear = max(0.0, start - float(rng.uniform(*STILL_SECONDS)))
    vanish = end + float(rng.uniform(*STILL_SECONDS))
    return Actor(shape, _color(rng), radius, appear, start, end, vanish, x0, y0, (dx * speed, dy * speed),
                 label)


def _start_inside(rng, cfg: DemoConfig, radius: float, travel_x: float, travel_y: float) -> tuple[float, float]:
    """A start point from which the whole path (travel_x, travel_y) stays inside the frame."""
    margin = radius * 1.6 + 2
    lo_x, hi_x = margin + max(0.0, -travel_x), cfg.size - margin - max(0.0, travel_x)
    lo_y, hi_y = margin + max(0.0, -travel_y), cfg.size - margin - max(0.0, travel_y)
    return float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))


def _idle_actor(rng, cfg: DemoConfig, main_shape: str, t0: float, t1: float) -> Actor:
    """An actor that performs no class: still, or drifting diagonally (no class moves diagonally)."""
    shape = main_shape if rng.random() < IDLE_MAIN_SHAPE else vocab.SHAPES[rng.integers(len(vocab.SHAPES))]
    radius = float(rng.uniform(7, 12))
    velocity = (0.0, 0.0)
    if rng.random() < IDLE_DRIFT:
        travel = float(rng.uniform(0.25, 0.4)) * cfg.size / math.sqrt(2)
        sx, sy = (float(v) for v in rng.choice([-1.0, 1.0], size=2))
        x0, y0 = _start_inside(rng, cfg, radius, sx * travel, sy * travel)
        velocity = (sx * travel / (t1 - t0), sy * travel / (t1 - t0))
    else:
        x0, y0 = (float(v) for v in rng.uniform(radius * 2, cfg.size - radius * 2, size=2))
    return Actor(shape, _color(rng), radius, t0, t0, t1, t1, x0, y0, velocity)


def _layout(rng, cfg: DemoConfig, main: str, others: list[str], duration: float):
    """Instances (label, start, end) placed left to right with background gaps, plus idle actors in the gaps."""
    min_gap, min_length = 1.5, 2.0
    fits = max(1, int((duration - 2.0 - min_gap) // (min_gap + min_length)))  # instances a short video can hold
    labels = [main] * min(int(rng.integers(2, 4)), fits)
    for other in others:
        if len(labels) < fits:
            labels.insert(int(rng.integers(len(labels) + 1)), other)
    lengths = rng.uniform(2.5, 6.0, size=len(labels))
    room = duration - 2.0 - min_gap * (len(labels) + 1)
    lengths *= min(1.0, 0.8 * room / lengths.sum())  # many long instances in a short video: shorten them
    free = room - lengths.sum()
    gaps = min_gap + rng.dirichlet(np.ones(len(labels) + 1)) * max(free, 0.0)
    segments, idle, t = [], [], 1.0 + gaps[0]
    for i, (label, length) in enumerate(zip(labels, lengths, strict=True)):
        segments.append((label, round(t, 2), round(t + length, 2)))
        gap = gaps[i + 1]
        if gap > 3.5 and rng.random() < 0.7:
            idle.append((t + length + 1.2, t + length + gap - 1.2))
        t += length + gap
    return segments, idle


def plan_video(rng: np.random.Generator, cfg: DemoConfig, main: str, classes: list[str], subset: str):
    duration = round(float(rng.uniform(cfg.min_duration, cfg.max_duration)) * cfg.fps) / cfg.fps
    main_shape, main_motion = vocab.parse_class(main)
    same_shape = [vocab.class_name(main_shape, m) for m in vocab.MOTIONS if m != main_motion]
    low, high = SAME_SHAPE_INSTANCES[subset]
    others = [same_shape[i] for i in rng.permutation(len(same_shape))[: int(rng.integers(low, high + 1))]]
    if rng.random() < cfg.second_class_prob:
        other = classes[rng.integers(len(classes))]
        if other != main:
            others.append(other)
    segments, idle = _layout(rng, cfg, main, others, duration)
    actors = [_moving_actor(rng, cfg, label, s, e) for label, s, e in segments]
    actors += [_idle_actor(rng, cfg, main_shape, t0, t1) for t0, t1 in idle]
    wanderers = []
    for _ in range(int(rng.integers(1, 3))):
        shape = vocab.DISTRACTOR_SHAPES[rng.integers(len(vocab.DISTRACTOR_SHAPES))]
        wanderers.append(Wanderer(shape, _color(rng), float(rng.uniform(6, 10)),
                                  float(rng.uniform(40, cfg.size - 40)), float(rng.uniform(40, cfg.size - 40)),
                                  float(rng.uniform(12, 30)), float(rng.uniform(12, 30)),
                                  float(rng.uniform(4, 9)), float(rng.uniform(0, 2 * math.pi))))
    return duration, segments, actors, wanderers


def world_background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(15, 45, size=3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    tint = rng.uniform(-12, 12, size=3)
    texture = rng.normal(0, 5, size=(size, size, 1))
    return np.clip(base + ramp * tint + texture, 0, 255)


def render_frames(rng, cfg: DemoConfig, duration: float, actors, wanderers):
    """Yield RGB uint8 frames; per-frame sensor noise comes from ``rng``.

    Every video is filmed by the same fixed camera (one background for the whole world), so what changes
    between videos is what happens in them, not the scenery.
    """
    from PIL import Image, ImageDraw

    background = world_background(np.random.default_rng([cfg.seed, 99]), cfg.size)
    for i in range(int(round(duration * cfg.fps))):
        t = i / cfg.fps
        image = Image.new("RGB", (cfg.size, cfg.size))
        draw = ImageDraw.Draw(image, "RGBA")
        for w in wanderers:
            vocab.draw_shape(draw, w.shape, *w.position(t), w.radius, w.color)
        for a in actors:
            if a.appear <= t <= a.vanish:
                vocab.draw_shape(draw, a.shape, *a.position(t), a.radius, a.color)
        shapes = np.asarray(image, dtype=np.float32)
        mask = shapes.any(axis=2, keepdims=True)
        noise = rng.normal(0, 2, size=shapes.shape)
        frame = np.where(mask, shapes, background) + noise
        yield np.clip(frame, 0, 255).astype(np.uint8)


def write_mp4(path: Path, frames, fps: int, size: int) -> None:
    """Encode with libx264 on one thread, so the same frames give the same bytes."""
    import av

    tmp = path.with_name(f".{path.name}.tmp")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": "23", "preset": "fast", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def planned_video(cfg: DemoConfig, subset: str, n: int) -> tuple[str, np.random.Generator, tuple]:
    """Video ``n`` of ``subset``: (its id, its generator after planning, ``plan_video``'s plan). Rendering goes on
    with the same generator (the sensor noise), so a plan needs no rendering (benchmarks.demo_world_cues)."""
    vid = f"demo_{'train' if subset == 'training' else 'test'}_{n:03d}"
    # One generator per video, derived from the seed and the id, so a video does not depend on the others.
    rng = np.random.default_rng([cfg.seed, 0 if subset == "training" else 1, n])
    classes = vocab.all_classes()
    return vid, rng, plan_video(rng, cfg, classes[n % len(classes)], classes, subset)


def render_video(video_dir: Path, cfg: DemoConfig, subset: str, n: int) -> tuple[str, dict, dict]:
    """Write one video; (its id, its ActivityNet-format database entry, its plan for ``actors.json``)."""
    vid, rng, (duration, segments, actors, wanderers) = planned_video(cfg, subset, n)
    write_mp4(video_dir / f"{vid}.mp4", render_frames(rng, cfg, duration, actors, wanderers), cfg.fps, cfg.size)
    entry = {
        "subset": subset,
        "duration": duration,
        "fps": cfg.fps,
        "resolution": f"{cfg.size}x{cfg.size}",
        "annotations": [{"segment": [s, e], "label": label} for label, s, e in segments],
    }
    return vid, entry, video_plan(duration, actors, wanderers)


def make_video(video_dir: Path, cfg: DemoConfig, subset: str, n: int) -> tuple[str, dict]:
    """Write one video; (its id, its ActivityNet-format database entry)."""
    vid, entry, _plan = render_video(video_dir, cfg, subset, n)
    return vid, entry


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, tuple | list):
        return [_rounded(v) for v in value]
    return value


def video_plan(duration: float, actors: list[Actor], wanderers: list[Wanderer]) -> dict:
    """What a video shows, as ``actors.json`` records it (``ACTORS_FORMAT``)."""
    return {"duration": duration,
            "actors": [{key: _rounded(value) for key, value in asdict(a).items()} for a in actors],
            "wanderers": [{key: _rounded(value) for key, value in asdict(w).items()} for w in wanderers]}


def write_actor_plans(path: Path, cfg: DemoConfig, plans: dict[str, dict]) -> None:
    """Write ``actors.json``: {video id: ``video_plan``} with the world's seed, size and fps."""
    atomic_write_json(path, {"format": ACTORS_FORMAT, "seed": cfg.seed, "size": cfg.size, "fps": cfg.fps,
                             "videos": plans})


def render_world(out_dir: Path, cfg: DemoConfig, workers: int = 2) -> dict:
    """Write ``out_dir/videos/*.mp4``, ``out_dir/annotations.json`` (ActivityNet format) and
    ``out_dir/actors.json`` (every actor's plan)."""
    n_classes = len(vocab.all_classes())
    video_dir = out_dir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(subset, n) for subset, per_class in (("training", cfg.videos_per_class_train),
                                                  ("validation", cfg.videos_per_class_test))
            for n in range(per_class * n_classes)]
    with ProcessPoolExecutor(max_workers=max(1, workers), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(render_video, video_dir, cfg, subset, n) for subset, n in jobs]
        rendered = [future.result() for future in futures]
    annotations = {"version": "grizal-demo-1", "seed": cfg.seed, "database": {vid: e for vid, e, _ in rendered}}
    write_actor_plans(out_dir / ACTORS_FILE, cfg, {vid: plan for vid, _, plan in rendered})
    atomic_write_json(out_dir / "annotations.json", annotations)
    return annotations
