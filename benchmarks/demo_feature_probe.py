"""Which frozen features carry motion so that it transfers to unseen classes? A linear probe on the demo world.

    .venv/bin/python -m benchmarks.demo_feature_probe                      # cache/prepare, cache/features
    .venv/bin/python -m benchmarks.demo_feature_probe --features OTHER_FOLDER

For every open split, a linear classifier (multinomial logistic regression) learns the motion direction (4 ways)
and the shape (4 ways) of action snippets from the split's training videos and seen classes, then names them on
the test videos' snippets of the unseen classes: new (shape, motion) combinations. Each feature is tried alone:
the CLIP frame features (rgb), the CLIP features of the rendered flow images (flow) and the frame features'
temporal difference (rgb[t+1] - rgb[t-1], a motion signal computed from the frames alone). A feature whose
motion probe fits the seen classes but falls on the unseen ones carries motion entangled with the shapes it was
seen with. Prints accuracy (%) on seen (training) and unseen (test) snippets, mean over the splits.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from pipeline.data import demo_vocab
from pipeline.data.build import build_split
from pipeline.data.index import Index
from pipeline.features.inputs import FeatureSet, snippet_targets

T = 64


def action_snippets(features: dict[str, torch.Tensor], targets: torch.Tensor, classes: list[str]
                    ) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    """Features of every snippet inside exactly one class's segment, with its (motion, shape) labels."""
    inside = targets.sum(1) == 1  # (V, T)
    v, t = torch.nonzero(inside, as_tuple=True)
    c = targets[v, :, t].argmax(-1).numpy()
    shapes, motions = zip(*(demo_vocab.parse_class(classes[i]) for i in c), strict=True)
    motion = np.array([list(demo_vocab.MOTIONS).index(m) for m in motions])
    shape = np.array([demo_vocab.SHAPES.index(s) for s in shapes])
    return {name: x[v, t] for name, x in features.items()}, motion, shape


def probe(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray,
          steps: int = 300) -> tuple[float, float]:
    """(train accuracy, test accuracy) of an L2-regularised multinomial logistic regression."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    layer = torch.nn.Linear(a.shape[1], 4)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    y = torch.from_numpy(train_y)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(a), y) + 1e-3 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (float((layer(a).argmax(-1).numpy() == train_y).mean()),
                float((layer(b).argmax(-1).numpy() == test_y).mean()))


def video_features(feature_set: FeatureSet, index: Index, ids: list[str]
                   ) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    videos = feature_set.videos(ids, {vid: index.videos[vid].duration for vid in ids}, T, True)
    rgb, flow = videos.rgb.float(), videos.flow.float()
    delta = torch.zeros_like(rgb)
    delta[:, 1:-1] = rgb[:, 2:] - rgb[:, :-2]
    return {"rgb": rgb, "flow": flow, "rgb temporal difference": delta}, videos.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", default="cache/prepare")
    parser.add_argument("--features", default="cache/features")
    parser.add_argument("--splits", default="0,1,2,3")
    args = parser.parse_args()
    index = Index.load(Path(args.prepare) / "index.json")
    feature_set = FeatureSet.open(args.features)
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for split_id in (int(s) for s in args.splits.split(",")):
        split = build_split(index, {"protocol": "open", "split_id": split_id})
        sides = []
        for ids, classes in ((split.train_videos, split.seen), (split.test_videos, split.unseen)):
            feats, times = video_features(feature_set, index, ids)
            sides.append(action_snippets(feats, snippet_targets(index, ids, classes, times), classes))
        (train_x, train_motion, train_shape), (test_x, test_motion, test_shape) = sides
        for name in train_x:
            for what, train_y, test_y in (("motion", train_motion, test_motion), ("shape", train_shape, test_shape)):
                scores.setdefault((name, what), []).append(probe(train_x[name], train_y, test_x[name], test_y))
    print("| feature | probe | seen classes, training videos (%) | unseen classes, test videos (%) |")
    print("| --- | --- | ---: | ---: |")
    for (name, what), runs in scores.items():
        fit = statistics.mean(100 * r[0] for r in runs)
        transfer = [100 * r[1] for r in runs]
        print(f"| {name} | {what} (4-way) | {fit:.1f} | {statistics.mean(transfer):.1f} "
              f"({', '.join(f'{x:.0f}' for x in transfer)}) |")


if __name__ == "__main__":
    main()
