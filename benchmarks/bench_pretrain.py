"""Zero-shot accuracy of the pretrained demo CLIP, through the extractor's own loader and preprocessing.

    .venv/bin/python -m benchmarks.bench_pretrain                      # cache/pretrain/clip.pt (trains if absent)
    .venv/bin/python -m benchmarks.bench_pretrain --checkpoint x.pt --stills 960 --videos 8

Prints accuracy with chance levels on held-out video-like stills (shape, colour, motion-cue direction) and on
frames of real demo-world videos (rendered to mp4 and decoded as extraction does; frames where exactly one actor
is visible; shape by the prompts the extractor builds from class names, ``extract.priors.name_template``), and
the stage's time from its report.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from grizal.encoders.clip import ClipEncoder, ClipSpec, load_clip
from pipeline.common import load_params
from pipeline.data import demo_vocab as vocab
from pipeline.data.demo import DemoConfig, make_video, planned_video
from pipeline.features.video import sampled_frames
from pipeline.params_schema import validate_section
from pipeline.pretraining import zeroshot
from pipeline.pretraining.corpus import ACTOR_SHAPES, COLOR_NAMES
from pipeline.pretraining.run import CHECKPOINT, REPORT, pretrain

REPO = Path(__file__).resolve().parents[1]


def encoders(clip: ClipEncoder):
    def images(frames: np.ndarray) -> torch.Tensor:
        prepared = np.stack([clip.prepare(Image.fromarray(f)) for f in frames])
        return torch.cat([clip.encode_prepared(prepared[i:i + 256]) for i in range(0, len(prepared), 256)])

    return images, lambda prompts: clip.encode_texts(prompts, normalize=False)


def held_out(clip: ClipEncoder, n: int) -> dict[str, float]:
    """The stage's held-out test, at the videos' 128 px through the encoder's own preprocessing."""
    return zeroshot.evaluate(*encoders(clip), image_size=128, n=n)


def actor_frames(demo: DemoConfig, n_videos: int, folder: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Sampled frames (5 fps) of test videos where exactly one actor is visible: frames, its shape, its colour."""
    colour_of = {rgb: name for name, rgb in vocab.COLORS.items()}
    frames, shapes, colours = [], [], []
    for n in range(n_videos):
        vid, _rng, (_, _, actors, _) = planned_video(demo, "validation", n)
        make_video(folder, demo, "validation", n)
        for frame in sampled_frames(folder / f"{vid}.mp4", 5.0):
            visible = [a for a in actors if a.appear <= frame.timestamp <= a.vanish]
            if len(visible) == 1:
                frames.append(np.asarray(frame.image))
                shapes.append(visible[0].shape)
                colours.append(colour_of[visible[0].color])
    return np.stack(frames), shapes, colours


def video_frames(clip: ClipEncoder, demo: DemoConfig, n_videos: int, template: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        frames, shapes, colours = actor_frames(demo, n_videos, Path(tmp))
    images, texts = encoders(clip)
    emb = images(frames)
    by_name = zeroshot.class_embeddings(texts, [[template.format(vocab.class_name(s, m)) for m in vocab.MOTIONS]
                                                for s in ACTOR_SHAPES])
    by_colour = zeroshot.class_embeddings(texts, zeroshot.shape_prompts())
    colour = zeroshot.class_embeddings(texts, zeroshot.color_prompts())
    shape_labels = np.array([ACTOR_SHAPES.index(s) for s in shapes])
    return {"shape (class-name prompts)": zeroshot.accuracy(emb, by_name, shape_labels),
            "shape (colour x shape prompts)": zeroshot.accuracy(emb, by_colour, shape_labels),
            "colour": zeroshot.accuracy(emb, colour, np.array([COLOR_NAMES.index(c) for c in colours])),
            "frames": len(frames)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "cache/pretrain" / CHECKPOINT)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--stills", type=int, default=480, help="held-out stills per test")
    parser.add_argument("--videos", type=int, default=6, help="demo test videos per world")
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 3], help="demo.seed values")
    parser.add_argument("--precision", default="bf16", help="as extraction loads it (extract.clip.precision)")
    args = parser.parse_args()
    params = load_params(args.params)
    checkpoint = args.checkpoint
    if not checkpoint.is_file():
        out = Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
        print(f"{checkpoint} absent: training with {args.params}'s pretrain section into {out}", flush=True)
        pretrain(validate_section(params, "pretrain", args.params), out, workers=2)
        checkpoint = out / CHECKPOINT
    report_path = checkpoint.with_name(REPORT)
    clip = load_clip(ClipSpec(model="grizal-demo", pretrained=str(checkpoint), precision=args.precision))
    template = validate_section(params, "extract", args.params)["priors"]["name_template"]
    print(f"checkpoint {checkpoint} ({args.precision}); chance: shape {zeroshot.CHANCE['shape']:.0%}, colour "
          f"{zeroshot.CHANCE['color']:.0%}, motion cue {zeroshot.CHANCE['motion']:.0%}")
    acc = held_out(clip, args.stills)
    print(f"held-out stills ({acc['n']} per test): shape {acc['shape']:.1%}  colour {acc['color']:.1%}  "
          f"motion-cue direction {acc['motion']:.1%}")
    demo = DemoConfig.from_section(validate_section(params, "demo", args.params))
    for seed in args.worlds:
        world = DemoConfig(**{**demo.__dict__, "seed": seed})
        got = video_frames(clip, world, args.videos, template)
        print(f"demo world seed {seed}, {got['frames']} frames of {args.videos} test videos with one actor: "
              + "  ".join(f"{k} {v:.1%}" for k, v in got.items() if k != "frames"))
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        s = report["seconds"]
        print(f"stage time (report.json): {s['total']:.0f} s = corpus {s['corpus']:.0f} s + training "
              f"{s['train']:.0f} s + test; {report['steps']} steps, {report['threads']} torch threads, "
              f"{report['corpus_workers']} corpus workers")


if __name__ == "__main__":
    main()
