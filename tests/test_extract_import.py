"""Importing existing features (.npy per video, HDF5) into a feature store with one command."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.extract import app
from pipeline.features.store import open_store, read_failures


def run(*args):
    return CliRunner().invoke(app, ["import", *map(str, args)])


def test_npy_folder_with_stride_timing_and_columns(tmp_path):
    src = tmp_path / "i3d"
    src.mkdir()
    rng = np.random.default_rng(0)
    feats = {"video_test_0000004": rng.normal(size=(10, 8)), "video_test_0000006": rng.normal(size=(5, 8))}
    for vid, f in feats.items():
        np.save(src / f"{vid}.npy", f.astype(np.float32))
    np.save(src / "broken.npy", np.zeros((2, 3, 4), np.float32))
    out = tmp_path / "rgb.zarr"
    args = ["--format", "npy", src, "--out", out, "--kind", "rgb", "--fps", 30, "--stride", 4, "--window", 16,
            "--columns", "0:6"]
    result = run(*args)
    assert result.exit_code == 1 and "1 of 3 videos not imported" in result.output
    result = run(*args, "--max-failure-fraction", 0.5)
    assert result.exit_code == 0, result.output
    store = open_store(out)
    assert store.dim == 6 and store.attrs["sample_fps"] == pytest.approx(7.5)
    assert store.attrs["encoder_model"] == "imported"
    assert store.complete_ids() == sorted(feats)
    got = store.read_videos(sorted(feats))
    for vid, f in feats.items():
        assert np.allclose(got[vid][0], f[:, :6])
        assert got[vid][1] == pytest.approx((np.arange(len(f)) * 4 + 8) / 30)
    assert "2-D" in read_failures(out)["broken"]["reason"]
    # The same import again skips what is there; another source needs --rebuild.
    assert run(*args, "--max-failure-fraction", 0.5).exit_code == 0
    other = run("--format", "npy", src, "--out", out, "--fps", 25, "--stride", 1, "--max-failure-fraction", 0.5)
    assert other.exit_code == 2 and "--rebuild" in other.output


def test_hdf5_with_own_timestamps_and_uniform_spreading(tmp_path):
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "own.h5", "w") as h5:
        for vid, n in (("a", 4), ("b", 7)):
            group = h5.create_group(vid)
            group["features"] = rng.normal(size=(n, 5)).astype(np.float32)
            group["timestamps"] = np.arange(n) * 0.5 + 0.25
    result = run("--format", "hdf5", tmp_path / "own.h5", "--out", tmp_path / "own.zarr", "--kind", "flow")
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "own.zarr")
    assert store.kind == "flow"
    assert store.read_videos(["b"])["b"][1] == pytest.approx(np.arange(7) * 0.5 + 0.25)

    # ActivityNet-style: (D, N) datasets without timestamps, spread over the index durations.
    with h5py.File(tmp_path / "anet.h5", "w") as h5:
        h5["v_abc"] = rng.normal(size=(5, 100)).astype(np.float32)
        h5["v_def"] = rng.normal(size=(5, 100)).astype(np.float32)
    index = {"videos": {"v_abc": {"path": None, "duration": 50.0}, "v_def": {"path": None, "duration": 20.0}}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    result = run("--format", "hdf5", tmp_path / "anet.h5", "--out", tmp_path / "anet.zarr", "--transpose",
                 "--index", tmp_path / "index.json")
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "anet.zarr")
    f, t = store.read_videos(["v_def"])["v_def"]
    assert f.shape == (100, 5) and t == pytest.approx((np.arange(100) + 0.5) * 0.2)
    assert store.video_attrs()["v_abc"]["duration"] == 50.0
    assert store.read_resampled(["v_abc"], T=100).shape == (1, 100, 5)


def test_import_user_errors(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    result = run("--format", "hdf5", tmp_path / "x.h5", "--out", tmp_path / "s.zarr")
    assert result.exit_code == 2 and "not a readable HDF5 file" in result.output
    result = run("--format", "csv", tmp_path, "--out", tmp_path / "s.zarr")
    assert result.exit_code == 2 and "use one of npy, hdf5" in result.output
    result = run("--format", "npy", tmp_path, "--out", tmp_path / "s.zarr", "--fps", 30)
    assert result.exit_code == 2 and "give both" in result.output
    with h5py.File(tmp_path / "plain.h5", "w") as h5:
        h5["a"] = np.zeros((3, 2), np.float32)
    result = run("--format", "hdf5", tmp_path / "plain.h5", "--out", tmp_path / "p.zarr")
    assert result.exit_code == 1 and "no timestamps in the source" in json.dumps(read_failures(tmp_path / "p.zarr"))
