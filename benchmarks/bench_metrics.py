"""Time the evaluation at ActivityNet scale (~5k videos x 100 predictions) and THUMOS scale.

Run: .venv/bin/python -m benchmarks.bench_metrics
Prints seconds for JSON loading and for scoring (mAP at all thresholds, average tIoU, recall).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.modelling.scoring import evaluate_detection, load_ground_truth, load_predictions, write_predictions


def synthetic(n_videos: int, n_classes: int, gt_per_video: int, pred_per_video: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    database, results = {}, {}
    for v in range(n_videos):
        vid = f"v_{v:06d}"
        label = f"class {rng.integers(n_classes)}"
        starts = rng.uniform(0, 100, gt_per_video)
        anns = [{"segment": [s, s + rng.uniform(1, 20)], "label": label} for s in starts]
        database[vid] = {"subset": "validation", "duration": 130.0, "annotations": anns}
        labels = np.where(
            rng.random(pred_per_video) < 0.7,
            label,
            [f"class {c}" for c in rng.integers(n_classes, size=pred_per_video)],
        )
        starts = rng.uniform(0, 100, pred_per_video)
        ends = starts + rng.uniform(1, 20, pred_per_video)
        scores = rng.random(pred_per_video)
        results[vid] = [
            {"label": str(lab), "score": float(sc), "segment": [float(s), float(e)]}
            for lab, sc, s, e in zip(labels, scores, starts, ends, strict=True)
        ]
    return {"database": database}, results


def bench(name: str, tious, **world) -> None:
    gt_dict, results = synthetic(**world)
    with tempfile.TemporaryDirectory() as tmp:
        pred_path = Path(tmp) / "pred.json"
        write_predictions(pred_path, results)
        t0 = time.perf_counter()
        gt = load_ground_truth(gt_dict)
        preds = load_predictions(pred_path)
        t1 = time.perf_counter()
        report = evaluate_detection(gt, preds, tious)
        t2 = time.perf_counter()
    c = report["counts"]
    print(
        f"{name}: {c['videos']} videos, {c['gt_instances']} gt, {c['predictions']} predictions, "
        f"{len(tious)} thresholds: load {t1 - t0:.2f} s, score {t2 - t1:.2f} s "
        f"(average mAP {report['average_mAP']:.4f})"
    )


def main() -> None:
    anet = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    bench("activitynet-scale", anet, n_videos=5000, n_classes=200, gt_per_video=2, pred_per_video=100)
    bench(
        "thumos-scale",
        [0.3, 0.4, 0.5, 0.6, 0.7],
        n_videos=213,
        n_classes=20,
        gt_per_video=15,
        pred_per_video=2000,
    )


if __name__ == "__main__":
    main()
