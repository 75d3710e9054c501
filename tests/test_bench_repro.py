"""benchmarks/bench_repro.py's plumbing (stage order, --stages, --params-set); the timed run itself is by hand."""

import importlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EDGES = [("demo", "prep"), ("prep", "gen"), ("prep", "train"), ("gen", "train"), ("pre", "train")]


@pytest.fixture
def bench(monkeypatch):
    """The script as `python -m benchmarks.bench_repro` imports it, from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.bench_repro")


@pytest.fixture
def project(tmp_path):
    stages = {name: {"cmd": "true"} for name in ("train", "pre", "gen", "demo", "prep", "extra")}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return tmp_path


def test_stages_run_after_what_they_read_ties_in_file_order(bench, project):
    assert bench.stage_order(project, EDGES) == ["pre", "demo", "prep", "gen", "train", "extra"]


def test_a_cycle_is_one_error_line(bench, project):
    with pytest.raises(bench.BenchError, match=r"^.*dvc.yaml: the stage graph has a cycle"):
        bench.stage_order(project, [*EDGES, ("train", "demo")])


def test_chosen_stages_bring_what_they_depend_on(bench, project):
    order = bench.stage_order(project, EDGES)
    assert bench.with_ancestors(order, ["gen"], EDGES) == ["demo", "prep", "gen"]
    assert bench.with_ancestors(order, ["train", "extra"], EDGES) == ["pre", "demo", "prep", "gen", "train", "extra"]
    with pytest.raises(bench.BenchError, match=r"^--stages: no stage nope in dvc.yaml"):
        bench.with_ancestors(order, ["nope"], EDGES)


def test_params_set_reads_yaml_values(bench):
    assert bench.parse_override("demo.videos_per_class_train=1") == ("demo.videos_per_class_train", 1)
    assert bench.parse_override("results.splits=[0, 1]") == ("results.splits", [0, 1])
    assert bench.parse_override("extract.clip.pretrained=null") == ("extract.clip.pretrained", None)
    with pytest.raises(bench.BenchError, match=r"^--params-set demo: expected key=value"):
        bench.parse_override("demo")
