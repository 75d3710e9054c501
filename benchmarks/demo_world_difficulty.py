"""How hard the demo world is, from its cached features (run after `dvc repro extract_rgb extract_flow`).

    .venv/bin/python -m benchmarks.demo_world_difficulty

1. The trivial "everything is the action" predictor: one segment covering each whole test video for every
   evaluated class, scored like GRIZAL (closed set and open-set splits 0-2).
2. A supervised upper-bound probe of the frozen features: a small temporal convolution trained on the training
   videos' rgb+flow snippets to name the moving actor's class (or background), scored on the test videos.
"""

from __future__ import annotations

import torch

from pipeline.common import load_params
from pipeline.data.build import build_split
from pipeline.data.index import Index
from pipeline.features.inputs import load_videos, snippet_targets
from pipeline.modelling.inference import score
from pipeline.modelling.scoring import ground_truth_of as ground_truth


def trivial_baseline(index: Index, params: dict) -> None:
    tious = [float(t) for t in params["evaluate"]["tious"]]
    for protocol, split_id in [("closed", None), ("open", 0), ("open", 1), ("open", 2)]:
        cfg = {**params["prepare"], "protocol": protocol, "split_id": split_id or 0}
        split = build_split(index, cfg).to_json()
        ids, classes = split["test_videos"], split["unseen"]
        results = {vid: [{"label": c, "score": 1.0, "segment": [0.0, index.videos[vid].duration]} for c in classes]
                   for vid in ids}
        report = score(results, ground_truth(index, ids, classes), classes, tious)
        print(f"everything-is-the-action, {protocol} split {split_id}: average mAP {100 * report['average_mAP']:.1f}%")


def feature_probe(index: Index, T: int) -> None:
    classes = index.classes

    def data(subset: str):
        ids = sorted(v for v in index.videos if index.videos[v].subset == subset)
        videos = load_videos("cache/features", ids, {v: index.videos[v].duration for v in ids}, T)
        targets = snippet_targets(index, ids, classes, videos.times)
        labels = torch.where(targets.amax(1) > 0, targets.argmax(1) + 1, 0)
        return torch.cat([videos.rgb, videos.flow], -1), labels

    x_train, y_train = data("train")
    x_test, y_test = data("test")
    flat = x_train.reshape(-1, x_train.shape[-1])
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(x_train.shape[-1], 128, 5, padding=2), torch.nn.ReLU(),
                              torch.nn.Dropout(0.3), torch.nn.Conv1d(128, len(classes) + 1, 5, padding=2))
    optimizer = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(net(x_train.transpose(1, 2)), y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = net.eval()(x_test.transpose(1, 2)).argmax(1)
    foreground = y_test > 0
    chance = 100 / len(classes)
    print(f"feature probe on test videos: foreground/background accuracy "
          f"{100 * ((predicted > 0) == foreground).float().mean():.0f}% (background share "
          f"{100 * (1 - foreground.float().mean()):.0f}%); class named on foreground snippets "
          f"{100 * (predicted[foreground] == y_test[foreground]).float().mean():.0f}% (chance {chance:.0f}%)")


def main() -> None:
    params = load_params("params.yaml")
    index = Index.load("cache/prepare/index.json")
    trivial_baseline(index, params)
    feature_probe(index, int(params["extract"]["T"]))


if __name__ == "__main__":
    main()
