"""Where a trained GRIZAL goes wrong on the demo world: finding the action, or naming it (shape vs motion).

    .venv/bin/python -m benchmarks.demo_error_analysis cache/results/closed/grizal/model.pt --protocol closed
    .venv/bin/python -m benchmarks.demo_error_analysis cache/results/closed/grizal/model.pt --videos train

Reads the cached features and the model; on the split's test (or training) videos, prints
0. average mAP with the params' localization, once per `cross_class` setting;
1. foreground/background: the AUC of the class's own curve inside vs outside its instances, and of the
   highest curve over all classes on any action's snippets vs background;
2. naming: on the snippets inside an instance, how often the class with the highest probability is right,
   and how often it has the right shape and the right motion (4 of each: chance is 25%);
3. the class embeddings Z_CLS: mean centred cosine between classes that share a shape, share a motion, or
   share neither; a class code that groups by shape but not by motion cannot tell "circle rises" from
   "circle falls".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import typer

from grizal.localization import CROSS_CLASS, localization_config
from pipeline.common import UserError, exit_on_user_error, load_params
from pipeline.data import demo_vocab
from pipeline.data.build import build_split
from pipeline.data.index import Index
from pipeline.features.inputs import load_priors, load_videos, snippet_targets, standardized
from pipeline.modelling.checkpoint import load_model as load_checkpoint
from pipeline.modelling.inference import curves_to_results, model_probs, score
from pipeline.modelling.scoring import ground_truth_of as ground_truth

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="stable")
    ranks = np.empty(scores.size)
    ranks[order] = np.arange(1, scores.size + 1)
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[: positive.size].sum() - positive.size * (positive.size + 1) / 2)
                 / (positive.size * negative.size))


def word_agreement(classes: list[str], predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    words = [demo_vocab.parse_class(c) for c in classes]
    shapes = np.array([w[0] for w in words])
    motions = np.array([w[1] for w in words])
    return {"class": float((predicted == truth).mean()),
            "shape": float((shapes[predicted] == shapes[truth]).mean()),
            "motion": float((motions[predicted] == motions[truth]).mean())}


def embedding_structure(classes: list[str], z_cls: torch.Tensor) -> dict[str, float]:
    z = torch.nn.functional.normalize(z_cls - z_cls.mean(0), dim=-1)
    cosine = (z @ z.T).numpy()
    words = [demo_vocab.parse_class(c) for c in classes]
    groups: dict[str, list[float]] = {"same shape": [], "same motion": [], "neither": []}
    for i in range(len(classes)):
        for j in range(len(classes)):
            if i == j:
                continue
            if words[i][0] == words[j][0]:
                groups["same shape"].append(cosine[i, j])
            elif words[i][1] == words[j][1]:
                groups["same motion"].append(cosine[i, j])
            else:
                groups["neither"].append(cosine[i, j])
    return {name: float(np.mean(values)) for name, values in groups.items() if values}


@app.command()
@exit_on_user_error
def main(
    model_path: Path = typer.Argument(..., help="A model.pt trained on the demo world."),
    protocol: str = typer.Option("closed", help="closed | open (the split the model was trained for)."),
    split_id: int = typer.Option(0, "--split", help="Open-set split (0..3)."),
    which: str = typer.Option("test", "--videos", help="test | train: the split's videos to analyse."),
    params: Path = typer.Option(Path("params.yaml")),
    prepare_dir: Path = typer.Option(Path("cache/prepare"), "--prepare"),
    features: Path = typer.Option(Path("cache/features")),
) -> None:
    values = load_params(params)
    index = Index.load(prepare_dir / "index.json")
    split = build_split(index, {**values["prepare"], "protocol": protocol, "split_id": split_id}).to_json()
    model, checkpoint = load_checkpoint(model_path)
    if which not in ("test", "train"):
        raise UserError("--videos", f"must be test or train, not {which!r}")
    ids = list(split[f"{which}_videos"])
    classes = list(split["unseen"] if which == "test" else split["seen"])
    videos = load_videos(features, ids, {v: index.videos[v].duration for v in ids}, checkpoint["T"],
                         checkpoint["model_config"].get("use_flow", True))
    model_videos, model_priors = standardized(videos, load_priors(features, classes), checkpoint["feature_stats"])
    probs = model_probs(model, model_videos, model_priors)  # (V, C, T)
    targets = snippet_targets(index, ids, classes, videos.times).numpy() > 0.5

    print(f"{model_path} on the {protocol} {which} videos ({len(ids)} videos, {len(classes)} classes)")
    tious = [float(t) for t in values["evaluate"]["tious"]]
    gt = ground_truth(index, ids, classes)
    for mode in CROSS_CLASS:
        loc_cfg = localization_config({**values["localization"], "cross_class": mode})
        report = score(curves_to_results(probs, videos, classes, loc_cfg), gt, classes, tious)
        print(f"average mAP, cross_class {mode}: {100 * report['average_mAP']:.1f}%")
    own = [rank_auc(probs[v, c][targets[v, c]], probs[v, c][~targets[v, c]])
           for v in range(len(ids)) for c in range(len(classes)) if 0 < targets[v, c].sum() < targets.shape[-1]]
    foreground = targets.any(1)
    highest = probs.max(1)
    print(f"foreground vs background: own-curve AUC {np.nanmean(own):.3f}, "
          f"highest-curve AUC {rank_auc(highest[foreground], highest[~foreground]):.3f}")
    agreement = word_agreement(classes, probs.argmax(1)[foreground], targets.argmax(1)[foreground])
    print(f"naming, on {int(foreground.sum())} action snippets: class {100 * agreement['class']:.1f}%, "
          f"shape {100 * agreement['shape']:.1f}%, motion {100 * agreement['motion']:.1f}% (chance 25%)")
    with torch.no_grad():
        z_cls = model.encode_priors(model_priors.tensors)
    structure = embedding_structure(classes, z_cls)
    print("Z_CLS centred cosine: " + ", ".join(f"{name} {value:+.2f}" for name, value in structure.items()))


if __name__ == "__main__":
    app()
