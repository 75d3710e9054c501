"""The README's imported-features workflows, through the commands the README prints: 48-d rgb features (not the
priors' CLIP, not its width) for a tiny custom data set, as a folder of .npy files or as one HDF5 file, imported into
cache/features/rgb.zarr, the import committed as extract_rgb's output, then train and evaluate; DVC keeps the
import, and the baseline is n/a with the reason. Each starts from the shared custom world with no rgb store (this
path imports the frame features instead of extracting them)."""

import json
import shutil

import numpy as np
import pytest
from support.custom_world import custom_project, run_workflow
from support.doc_workflows import commands

pytestmark = pytest.mark.slow
WIDTH = 48


@pytest.fixture
def project(custom_world_template, tmp_path):
    dest, env, database = custom_project(custom_world_template, tmp_path)
    shutil.rmtree(dest / "cache/features/rgb.zarr")
    rng = np.random.default_rng(0)
    # the STALE-style layout: a feature every 4 frames at 30 fps
    features = {vid: rng.standard_normal((int(entry["duration"] * 30 / 4), WIDTH)).astype(np.float32)
                for vid, entry in database.items()}
    return dest, env, features


def _train_evaluate_and_keep(lines: list[str], dest, env, source: str) -> None:
    done = run_workflow(lines, dest, env)
    repro = done[-1].stdout
    assert "Running stage 'train'" in repro and "Running stage 'evaluate'" in repro
    assert "Running stage 'extract_rgb'" not in repro

    import zarr

    store = zarr.open_group(str(dest / "cache/features/rgb.zarr"), mode="r")
    assert store.attrs["dim"] == WIDTH and store.attrs["encoder"] == f"imported from {source}"
    metrics = json.loads((dest / "cache/evaluate/metrics.json").read_text())
    assert 0.0 <= metrics["grizal"]["average_mAP"] <= 1.0
    for name in ("baseline_name_bg", "baseline_priors"):
        assert metrics[name]["scored"] is False and metrics[name]["average_mAP"] is None
        assert (f"baseline undefined: the frame features (imported from {source}, {WIDTH}-d) were not made by the "
                "priors' CLIP") in metrics[name]["reason"]

    # evaluate's plan (extract_rgb and train are upstream of it); a bare --dry also plans `results`, whose DVC run
    # cache hashes deps that may not exist yet (cache/demo on a data set that never rendered it, dvc#9818)
    (dry,) = run_workflow(["dvc repro --dry evaluate"], dest, env)
    assert "Running stage 'extract_rgb'" not in dry.stdout and "Running stage 'train'" not in dry.stdout


def test_imported_npy_features_train_and_evaluate_and_dvc_keeps_them(project):
    dest, env, features = project
    (dest / "my_features").mkdir()
    for vid, array in features.items():
        np.save(dest / "my_features" / f"{vid}.npy", array)
    lines = commands("imported-features")
    assert any(line.startswith("python -m pipeline.extract import --format npy my_features/") for line in lines)
    _train_evaluate_and_keep(lines, dest, env, "my_features")


def test_imported_hdf5_features_train_and_evaluate_and_dvc_keeps_them(project):
    import h5py

    dest, env, features = project
    with h5py.File(dest / "my_features.h5", "w") as h5:
        for i, (vid, array) in enumerate(features.items()):
            if i % 2:  # both layouts the importer reads: a dataset per video, or a group holding `features`
                h5.create_dataset(vid, data=array)
            else:
                h5.create_group(vid).create_dataset("features", data=array)
    lines = commands("imported-features-hdf5")
    assert any(line.startswith("python -m pipeline.extract import --format hdf5 my_features.h5") for line in lines)
    _train_evaluate_and_keep(lines, dest, env, "my_features.h5")
