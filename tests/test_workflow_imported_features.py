"""The README's imported-features workflow, through the commands the README prints: 48-d .npy rgb features (not
the priors' CLIP, not its width) for a tiny custom data set, imported into cache/features/rgb.zarr, the extract
stage frozen, then train and evaluate; DVC keeps the import, and the baseline is n/a with the reason."""

import json

import numpy as np
import pytest
from support.custom_world import custom_project, run_workflow
from support.doc_workflows import commands

pytestmark = pytest.mark.slow
WIDTH = 48


def test_imported_npy_features_train_and_evaluate_and_dvc_keeps_them(tmp_path):
    dest, env, database = custom_project(tmp_path)
    features = dest / "my_features"
    features.mkdir()
    rng = np.random.default_rng(0)
    for vid, entry in database.items():  # the README's STALE-style layout: a feature every 4 frames at 30 fps
        n = int(entry["duration"] * 30 / 4)
        np.save(features / f"{vid}.npy", rng.standard_normal((n, WIDTH)).astype(np.float32))

    lines = commands("imported-features")
    assert any(line.startswith("python -m pipeline.extract import --format npy my_features/") for line in lines)
    done = run_workflow(lines, dest, env)
    repro = done[-1].stdout
    assert "Running stage 'train'" in repro and "Running stage 'evaluate'" in repro
    assert "Running stage 'extract_rgb'" not in repro

    import zarr

    store = zarr.open_group(str(dest / "cache/features/rgb.zarr"), mode="r")
    assert store.attrs["dim"] == WIDTH
    metrics = json.loads((dest / "cache/evaluate/metrics.json").read_text())
    assert 0.0 <= metrics["grizal"]["average_mAP"] <= 1.0
    assert metrics["baseline"]["scored"] is False and metrics["baseline"]["average_mAP"] is None
    assert (f"baseline undefined: the frame features (imported from my_features, {WIDTH}-d) were not made by the "
            "priors' CLIP") in metrics["baseline"]["reason"]

    (dry,) = run_workflow(["dvc repro --dry"], dest, env)
    assert "Running stage 'extract_rgb'" not in dry.stdout and "Running stage 'train'" not in dry.stdout
