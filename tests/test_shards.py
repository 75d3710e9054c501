"""Shards from the launcher (`--shard auto`): a Slurm array of 3 tasks as 3 processes merges into the store one
process makes, bit for bit; torchrun's variables and one GPU per process; bad environments say so in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_video import make_bad_videos, make_video

from pipeline.common import UserError
from pipeline.extract import launcher_device
from pipeline.features.extraction import index_costs
from pipeline.features.store import Shard, balance_shards, open_store, read_failures

REPO = Path(__file__).resolve().parents[1]
LAUNCHER_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP",
                 "RANK", "WORLD_SIZE", "LOCAL_RANK")
EXTRACT = {
    "device": "cpu",
    "T": 16,
    "max_failure_fraction": 1.0,
    # bf16, not auto: bit for bit holds where outputs round to bf16; fp32 kernels differ in the last bits with the
    # frames a batch holds, and shards batch other frames together
    "clip": {"model": "grizal-tiny", "pretrained": None, "seed": 0, "precision": "bf16", "batch_size": 8},
    "frames": {"sample_fps": 5},
    "flow": {"method": "farneback", "max_side": 64, "batch_size": 4},
}


def slurm(task: int, count: int, first: int = 0, step: int | None = None) -> dict[str, str]:
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count), "SLURM_ARRAY_TASK_MIN": str(first)}
    return env | ({"SLURM_ARRAY_TASK_STEP": str(step)} if step else {})


def test_shard_auto_reads_the_launcher():
    assert Shard.parse("auto", slurm(2, 3)) == Shard(2, 3)
    assert Shard.parse("auto", slurm(5, 4, first=3)) == Shard(2, 4)  # --array=3-6
    assert Shard.parse("auto", slurm(5, 4, first=1, step=2)) == Shard(2, 4)  # --array=1-7:2
    assert Shard.parse("auto", {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Shard(3, 4)
    # torchrun inside each array task splits the task's share again
    assert Shard.parse("auto", slurm(1, 3) | {"RANK": "1", "WORLD_SIZE": "2"}) == Shard(3, 6)
    assert Shard.parse("0/2", slurm(1, 3)) == Shard(0, 2)  # an explicit share wins


@pytest.mark.parametrize("environ, words", [
    ({}, "no launcher found"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, "must all be integers"),
    (slurm(3, 3), "is not one of 3 tasks"),
    (slurm(4, 3, first=1, step=2), "is not one of 3 tasks"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "must both be integers"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "expected 0 <= RANK < WORLD_SIZE"),
])
def test_shard_auto_without_a_usable_launcher_says_so(environ, words):
    with pytest.raises(UserError, match=words) as err:
        Shard.parse("auto", environ)
    assert "\n" not in str(err.value)


def test_torchrun_gives_each_process_its_gpu(monkeypatch):
    import torch

    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert launcher_device("auto", "auto") == "cuda:3"
    assert launcher_device("cuda", "auto") == "cuda:3"
    assert launcher_device("cuda:1", "auto") == "cuda:1"  # a named device is the user's choice
    assert launcher_device("cpu", "auto") == "cpu"
    assert launcher_device("auto", "1/4") == "auto"  # only --shard auto reads the launcher
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launcher_device("auto", "auto") == "auto"  # torchrun on CPU nodes
    monkeypatch.setenv("LOCAL_RANK", "one")
    with pytest.raises(UserError, match="LOCAL_RANK"):
        launcher_device("auto", "auto")


def test_shards_balance_decode_cost_not_count():
    # One long video and many short ones: by count, the long video's shard would hold twice the mean work.
    costs = {"long": 600.0} | {f"short_{i:02d}": 30.0 for i in range(40)}
    shards = balance_shards(costs, 4)
    work = [sum(costs[v] for v in shard) for shard in shards]
    assert sorted(v for shard in shards for v in shard) == sorted(costs)
    assert shards[0] == ["long"] and max(work) == 600.0  # the long video alone; the others share the rest
    assert max(work[1:]) - min(work[1:]) <= 30.0
    # Every task computes the same split, whatever order it reads the ids in.
    assert balance_shards(dict(reversed(list(costs.items()))), 4) == shards
    assert [Shard(i, 4).weighted(costs).select(reversed(list(costs))) for i in range(4)] == shards


def test_unknown_costs_count_as_the_median():
    costs = {"a": 10.0, "b": 20.0, "c": 30.0, "d": None, "e": 0.0}
    assert balance_shards(costs, 2) == [["c", "e"], ["a", "b", "d"]]  # d and e count 20: 30+20 vs 20+20+10
    assert balance_shards({v: None for v in "abcd"}, 2) == [["a", "c"], ["b", "d"]]  # none known: 1 each


def test_index_costs_are_duration_times_fps(tmp_path):
    index = {"videos": {"a": {"duration": 10.0, "fps": 25.0}, "b": {"duration": 3, "fps": None},
                        "c": {"path": "x.mp4"}, "d": {"duration": True, "fps": 30}}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert index_costs(tmp_path / "index.json") == {"a": 250.0, "b": None, "c": None, "d": None}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("array")
    videos = {f"clip_{i}": make_video(root / "videos" / f"clip_{i}.mp4", frames=8 + 3 * i) for i in range(7)}
    bad = make_bad_videos(root / "videos" / "bad")
    videos |= {name: bad[name][0] for name in ("truncated", "missing")}
    index = {"schema": 1, "dataset": "custom", "classes": [], "videos": {
        vid: {"path": str(path.relative_to(root)), "duration": 1.0 + i, "fps": 10.0, "subset": "test", "segments": []}
        for i, (vid, path) in enumerate(videos.items())}}
    (root / "cache" / "prepare").mkdir(parents=True)
    (root / "cache" / "prepare" / "index.json").write_text(json.dumps(index))
    for name in ("array", "single"):
        out = {kind: f"{name}/{kind}.zarr" for kind in ("rgb", "flow")}
        (root / f"{name}.yaml").write_text(yaml.safe_dump({"extract": {**EXTRACT, "out": out}}))
    return root


def extract_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    return env | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"} | extra


def run_tasks(root: Path, params: str, environments: list[dict[str, str]], shard: str) -> None:
    """rgb then flow in each process, all processes at once (they create the stores concurrently)."""
    script = (f"{sys.executable} -m pipeline.extract rgb --params {params} --shard {shard} && "
              f"{sys.executable} -m pipeline.extract flow --params {params} --shard {shard}")
    procs = [subprocess.Popen(["bash", "-c", script], cwd=root, env=extract_env(env), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for env in environments]
    for proc in procs:
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, output


def store_contents(path: Path) -> dict:
    store = open_store(path)
    ids = store.complete_ids()
    arrays = store.read_videos(ids)
    return {"root": store.attrs, "videos": store.video_attrs(), "ids": ids,
            "expected": json.loads((path / "expected_ids.json").read_text()),
            "arrays": {v: (arrays[v][0].tobytes(), arrays[v][1].tobytes()) for v in ids}}


def submit_array(root: Path, kind: str, state: Path) -> str:
    """scripts/slurm/submit_extract.sh with tests/fakes/sbatch, which runs the 3 tasks at once and then the check."""
    env = extract_env({"PATH": f"{REPO / 'tests' / 'fakes'}:{os.environ['PATH']}", "FAKE_SLURM_DIR": str(state),
                       "GRIZAL_PYTHON": sys.executable})
    result = subprocess.run(["bash", str(REPO / "scripts/slurm/submit_extract.sh"), kind, "3", "array.yaml",
                             "--time=01:00:00"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_slurm_array_of_three_equals_one_process(project, tmp_path):
    for kind in ("rgb", "flow"):
        assert f"(3 tasks, {kind} -> array/{kind}.zarr)" in submit_array(project, kind, tmp_path)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith("--parsable --array=0-2 --time=01:00:00 ") and calls[0].endswith("rgb array.yaml")
    assert calls[1].startswith("--parsable --dependency=afterok:100 --time=01:00:00 ")
    for job, kind in ((100, "rgb"), (102, "flow")):  # every task and the dependent check succeeded
        assert kind in (tmp_path / f"out-{job}_0").read_text()
        assert [(tmp_path / f"job-{n}").read_text().strip() for n in (job, job + 1)] == ["0", "0"]
        assert "complete" in (tmp_path / f"out-{job + 1}").read_text()
        assert "in shard shard-0-of-3" in (tmp_path / f"out-{job}_0").read_text()
    run_tasks(project, "single.yaml", [{}], "0/1")
    for kind in ("rgb", "flow"):
        array, single = project / "array" / f"{kind}.zarr", project / "single" / f"{kind}.zarr"
        assert sorted(p.name for p in array.glob("failures*.jsonl")) == [
            f"failures.shard-{i}-of-3.jsonl" for i in range(3)]
        assert read_failures(array) == read_failures(single)
        assert set(read_failures(array)) == {"truncated", "missing"}
        merged, whole = store_contents(array), store_contents(single)
        assert len(merged["ids"]) == 7
        assert merged == whole  # arrays bit for bit, root and per-video attributes, expected ids
