"""One pretraining run, as the `pretrain` stage makes it: corpus -> contrastive training -> held-out zero-shot
accuracy -> `clip.pt` and `report.json`."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from grizal.precision import resolve_precision
from pipeline.common import atomic_write_json
from pipeline.precision import announce
from pipeline.pretraining import loop, zeroshot

CHECKPOINT = "clip.pt"  # extract.clip.pretrained points here
REPORT = "report.json"
LOG_EVERY = 250  # steps between progress lines


def pretrain(section: dict[str, Any], out: Path, workers: int, log=None) -> dict[str, Any]:
    """Train the demo CLIP with a checked ``pretrain`` section; write ``out/clip.pt`` then ``out/report.json``
    (each atomically; a run stopped before the end leaves neither, not even the previous run's)."""
    log = log or (lambda message: print(message, flush=True))
    for name in (CHECKPOINT, REPORT):
        (out / name).unlink(missing_ok=True)
    cfg = loop.PretrainConfig.from_section(section, loop.model_image_size())
    start = time.perf_counter()
    images, captions = loop.render_corpus(cfg.corpus, workers)
    tokens = loop.tokenize(captions)
    corpus_s = time.perf_counter() - start
    model = loop.build_model(cfg.seed)
    cpu = torch.device("cpu")
    precision = resolve_precision(cfg.precision, cpu, cpu_bf16=False)
    announce("pretrain.precision", cfg.precision, precision, cpu)
    log(f"pretrain: {len(images)} stills and captions in {corpus_s:.0f} s; {cfg.steps} steps of batch "
        f"{cfg.batch_size} on {torch.get_num_threads()} thread(s)")

    def on_step(step: int, loss: float) -> None:
        if (step + 1) % LOG_EVERY == 0 or step + 1 == cfg.steps:
            log(f"pretrain: step {step + 1}/{cfg.steps} loss {loss:.3f} ({time.perf_counter() - start:.0f} s)")

    losses = loop.train(model, images, tokens, cfg, on_step, precision)
    train_s = time.perf_counter() - start - corpus_s
    with torch.no_grad():
        accuracy = zeroshot.evaluate(*zeroshot.model_encoders(model, loop.tokenize, loop.normalize),
                                     cfg.corpus.image_size, section["eval_stills"])
    loop.save_checkpoint(model, out / CHECKPOINT)
    tail = losses[-min(20, len(losses)):]
    report = {
        "model": loop.MODEL,
        "checkpoint": CHECKPOINT,
        "checkpoint_sha256": hashlib.sha256((out / CHECKPOINT).read_bytes()).hexdigest(),
        "settings": section,
        "corpus": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg.corpus).items()},
        "steps": cfg.steps,
        "precision": precision,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "corpus_workers": workers,
        "seconds": {"corpus": round(corpus_s, 1), "train": round(train_s, 1),
                    "total": round(time.perf_counter() - start, 1)},
        "loss": {"first": round(sum(losses[:20]) / len(losses[:20]), 4), "final": round(sum(tail) / len(tail), 4)},
        "held_out": {**{k: round(v, 4) for k, v in accuracy.items() if k != "n"}, "stills": accuracy["n"]},
        "chance": {k: round(v, 4) for k, v in zeroshot.CHANCE.items()},
    }
    atomic_write_json(out / REPORT, report)
    return report
