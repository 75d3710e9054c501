"""The three joint units (extract.priors.joint_unit) on the demo world's priors, with the demo's encoder.

    .venv/bin/python -m benchmarks.bench_joint_unit [--params params.yaml] [--work /tmp/bench_joint_unit]

Generates the demo classes' priors as the generate stage does (params' `generate` section, offline backends
unless the params say otherwise), encodes them with each unit into its own priors store, and prints per unit:

- retrieval: each (sentence, image) pair, as the mean of its real tokens, is given the class whose other pairs'
  mean is nearest (cosine, after removing the mean over all pairs: random-weight CLIP features share a large
  common component). Accuracy over all pairs, and how often the chosen class has the right shape and the right
  motion (4 of each, chance 25%; 16 classes, chance 6.25%).
- cross-modal cosine: within a pair, cosine between the mean text-position token and the mean image-position
  token (centred the same way).
- mixing: how much a pair's text-position tokens move when its image is swapped for another class's image,
  relative to their own size (0 when nothing mixes the modalities before the VLE).
- seconds to encode the priors, and tokens per pair.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from grizal.encoders.priors import JOINT_UNITS, TEXT_TOKEN, encode_class_priors
from pipeline.common import exit_on_user_error, load_params, section
from pipeline.data import demo_vocab
from pipeline.features.priors import PriorEncoder, _load_image, load_priors_json, run_priors
from pipeline.features.settings import build_clip, extract_config
from pipeline.features.store import read_priors

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def pair_vectors(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, E) mean of all real tokens, of the text-position tokens and of the image-position tokens."""
    joint, mask, kind = arrays["joint"], arrays["joint_mask"].astype(bool), arrays["token_type"]
    def mean(select: np.ndarray) -> np.ndarray:
        return (joint * select[..., None]).sum(1) / np.maximum(select.sum(1, keepdims=True), 1)
    return mean(mask), mean(mask & (kind == TEXT_TOKEN)), mean(mask & (kind != TEXT_TOKEN))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def retrieval(pairs: dict[str, np.ndarray]) -> dict[str, float]:
    """Leave-one-out nearest class mean: accuracy, right shape, right motion."""
    names = sorted(pairs)
    everything = np.concatenate([pairs[n] for n in names])
    centre = everything.mean(0)
    centred = {n: pairs[n] - centre for n in names}
    hits = shape = motion = total = 0
    for name in names:
        for i in range(len(centred[name])):
            scores = []
            for other in names:
                rows = np.delete(centred[other], i, axis=0) if other == name else centred[other]
                scores.append(float(_unit(rows.mean(0)) @ _unit(centred[name][i])))
            guess = names[int(np.argmax(scores))]
            truth, got = demo_vocab.parse_class(name), demo_vocab.parse_class(guess)
            hits += guess == name
            shape += got[0] == truth[0]
            motion += got[1] == truth[1]
            total += 1
    return {"accuracy": hits / total, "shape": shape / total, "motion": motion / total}


def cross_modal(texts: dict[str, np.ndarray], images: dict[str, np.ndarray]) -> float:
    all_t = np.concatenate(list(texts.values()))
    all_i = np.concatenate(list(images.values()))
    t, i = _unit(all_t - all_t.mean(0)), _unit(all_i - all_i.mean(0))
    return float((t * i).sum(1).mean())


def mixing(clip, unit: str, classes: dict[str, dict], base: Path, template: str) -> float:
    """Relative change of the text-position tokens when each class's images are those of the next class."""
    names = sorted(classes)
    changes = []
    for name, donor in zip(names, names[1:] + names[:1], strict=True):
        texts = classes[name]["texts"]
        own = [_load_image(base / p) for p in classes[name]["images"]]
        other = [_load_image(base / p) for p in classes[donor]["images"]][: len(own)]
        a = encode_class_priors(clip, name, texts, own, template, unit)
        b = encode_class_priors(clip, name, texts, other, template, unit)
        text = a["joint_mask"].astype(bool) & (a["token_type"] == TEXT_TOKEN)
        changes.append(np.linalg.norm(a["joint"][text] - b["joint"][text]) / np.linalg.norm(a["joint"][text]))
    return float(np.mean(changes))


@app.command()
@exit_on_user_error
def main(params: Path = typer.Option(Path("params.yaml"), help="params with `generate` and `extract` sections"),
         work: Path = typer.Option(Path("/tmp/bench_joint_unit"), help="scratch folder (priors and stores)")) -> None:
    import torch

    from pipeline.priors.config import build_config
    from pipeline.priors.generation import run as generate

    torch.set_num_threads(1)
    values = load_params(params)
    cfg = extract_config(values, str(params))
    template = str(cfg["priors"]["name_template"])
    gen = build_config(section(values, "generate"), params, {"out": work / "priors"})
    classes_list = demo_vocab.all_classes()
    if generate(gen, classes_list) != 0:
        raise SystemExit("error: generating the priors failed")
    priors_json = work / "priors" / "priors.json"
    _k, classes = load_priors_json(priors_json)
    clip = build_clip(cfg, str(params))
    print(f"{len(classes)} classes, k = {_k}, encoder {cfg['clip']['model']} ({cfg['clip']['pretrained'] or 'random'})")
    print("| unit | tokens/pair | retrieval acc | right shape | right motion | cross-modal cos | mixing | encode s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for unit in JOINT_UNITS:
        store = work / f"priors-{unit}.zarr"
        started = time.perf_counter()
        run_priors(priors_json, store, PriorEncoder.of(clip), template, joint_unit=unit)
        seconds = time.perf_counter() - started
        arrays = read_priors(store, sorted(classes))
        vectors = {name: pair_vectors(arrays[name]) for name in classes}
        r = retrieval({n: v[0] for n, v in vectors.items()})
        cos = cross_modal({n: v[1] for n, v in vectors.items()}, {n: v[2] for n, v in vectors.items()})
        mix = mixing(clip, unit, classes, priors_json.parent, template)
        tokens = float(np.mean([a["joint_mask"].sum(1).mean() for a in arrays.values()]))
        print(f"| {unit} | {tokens:.0f} | {100 * r['accuracy']:.1f}% | {100 * r['shape']:.1f}% | "
              f"{100 * r['motion']:.1f}% | {cos:.3f} | {mix:.3f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    app()
