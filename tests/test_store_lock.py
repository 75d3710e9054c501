"""One writer per store, with real extract processes: a second writer of a store (or of one shard of it) stops at
once with one line while the first is mid-run, the first then finishes with no false failure; shards of one
store run together. The first writer is held after its first video by a file handshake, never by sleeping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_video import make_video

from pipeline.features.store import Shard, StoreBusy, WriterLock, check_feature_store, read_failures

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"extract": {"device": "cpu", "T": 8, "max_failure_fraction": 0.0, "frames": {"sample_fps": 5},
                      "clip": {"model": "grizal-tiny", "pretrained": None, "seed": 0, "precision": "auto",
                               "batch_size": 8}}}
# Runs the extract CLI, but after its first video is written it says so (creates HELD) and waits for GO.
HELD_WRITER = """
import sys, time
from pathlib import Path
from pipeline.features import store
held, go = Path(sys.argv[1]), Path(sys.argv[2])
real = store.FeatureStoreWriter.write_video
def write_then_hold(self, *args, **kwargs):
    real(self, *args, **kwargs)
    if not held.exists():
        held.write_text("held")
        deadline = time.monotonic() + 300
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
store.FeatureStoreWriter.write_video = write_then_hold
from pipeline.extract import app
app(sys.argv[3:], prog_name="extract")
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    ids = [f"clip_{i}" for i in range(4)]
    for i, vid in enumerate(ids):
        make_video(root / "videos" / f"{vid}.mp4", frames=8 + i)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (root / "held.py").write_text(HELD_WRITER)
    return root, ids


def extract_args(root: Path, out: str, shard: str | None = None) -> list[str]:
    args = ["videos", "--videos", str(root / "videos"), "--out", str(root / out), "--params",
            str(root / "params.yaml")]
    return [*args, "--shard", shard] if shard else args


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def start_held(root: Path, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
    held, go = root / f"{name}.held", root / f"{name}.go"
    proc = subprocess.Popen([sys.executable, str(root / "held.py"), str(held), str(go), *args], cwd=root,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not held.exists():  # the handshake: the writer is now mid-run, holding its lock
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"held writer ended before its first video: {proc.communicate()[1][-3000:]}")
        time.sleep(0.01)
    return proc, go


def run_extract(root: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.extract", *args], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=300)


def finish(proc: subprocess.Popen, go: Path) -> str:
    go.write_text("go")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    return out + err


def assert_refused(done: subprocess.CompletedProcess, store: Path) -> None:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(errors) == 1 and f"{store}: another run" in errors[0] and "is writing this store" in errors[0]
    assert "Traceback" not in done.stderr


def test_a_second_writer_stops_at_once_and_the_first_has_no_false_failure(world):
    root, ids = world
    store = root / "one" / "rgb.zarr"
    first, go = start_held(root, "one", extract_args(root, "one"))
    before = (store / "failures.jsonl").read_text()
    assert_refused(run_extract(root, extract_args(root, "one")), store)
    assert_refused(run_extract(root, extract_args(root, "one", "1/2")), store)  # a shard waits for no one either
    assert (store / "failures.jsonl").read_text() == before == ""
    output = finish(first, go)
    assert "not extracted" not in output
    report = check_feature_store(store, ids)
    assert report.ok(0.0) and not report.failed and not report.missing
    # The lock went with the process: the next run starts at once and finds everything done.
    again = run_extract(root, extract_args(root, "one"))
    assert again.returncode == 0 and "4 already complete, 0 to extract" in again.stdout, again.stderr


def test_shards_of_one_store_run_together_but_not_twice(world):
    root, ids = world
    store = root / "shards" / "rgb.zarr"
    first, go = start_held(root, "shard0", extract_args(root, "shards", "0/2"))
    other = run_extract(root, extract_args(root, "shards", "1/2"))  # the other shard runs while shard 0 is held
    assert other.returncode == 0, other.stdout + other.stderr
    assert_refused(run_extract(root, extract_args(root, "shards", "0/2")), store)
    assert_refused(run_extract(root, extract_args(root, "shards")), store)  # no unsharded writer meanwhile
    finish(first, go)
    report = check_feature_store(store, ids)
    assert report.ok(0.0) and not report.missing and not read_failures(store)
    assert json.loads((store / "expected_ids.json").read_text()) == ids


def test_lock_granularity_in_one_process(tmp_path):
    store = tmp_path / "rgb.zarr"
    held = WriterLock(store)
    with pytest.raises(StoreBusy, match=f"pid {os.getpid()}"):
        WriterLock(store)
    shard = WriterLock(tmp_path / "other.zarr", Shard(0, 2))
    WriterLock(tmp_path / "other.zarr", Shard(1, 2)).release()
    with pytest.raises(StoreBusy):
        WriterLock(tmp_path / "other.zarr", Shard(0, 2))
    shard.release()
    held.release()
    WriterLock(store, wait=True).release()
