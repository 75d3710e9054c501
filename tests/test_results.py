"""The results grid: the same numbers with worker processes as in one process, and errors that surface as
one line from a worker."""

import json

import pytest
import torch

from pipeline.common import UserError
from pipeline.results import grid_jobs, results_table, run_grid


def _values(tiny_world, **results):
    root = tiny_world["root"]
    return {
        "prepare": {"dataset": "demo", "annotations": str(root / "annotations.json"), "protocol": "open",
                    "unseen_list": str(root / "unseen.txt")},
        "model": dict(tiny_world["model"]),
        "loss": {},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "localization": {},
        "evaluate": {"tious": [0.3, 0.5]},
        "results": {"splits": [0], "variants": ["GRIZAL", "w/o Fourier"], "closed_set": True, **results},
    }


def test_grid_jobs_order_and_unknown_variant(tiny_world):
    values = _values(tiny_world)
    assert grid_jobs(values) == [("closed", None, "GRIZAL"), ("open", 0, "GRIZAL"), ("open", 0, "w/o Fourier")]
    values["results"]["variants"] = ["GRIZAL", "w/o colour"]
    with pytest.raises(UserError, match="unknown variant 'w/o colour'"):
        grid_jobs(values)


@pytest.mark.slow
def test_workers_give_the_same_runs_as_one_process(tiny_world, tmp_path):
    assert torch.get_num_threads() == 1  # one thread per worker either way, so the floats match exactly
    values = _values(tiny_world, closed_set=False)
    one = run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "one", log=lambda _m: None)
    values["results"]["workers"] = 2
    two = run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "two", log=lambda _m: None)
    assert [(r["split"], r["variant"]) for r in two["runs"]] == [(0, "GRIZAL"), (0, "w/o Fourier")]
    for a, b in zip(one["runs"], two["runs"], strict=True):
        assert a["grizal"] == b["grizal"] and a["baseline"] == b["baseline"]
    for variant in ("grizal", "w_o_fourier"):
        metrics = json.loads((tmp_path / "two" / "split_0" / variant / "metrics.json").read_text())
        assert metrics["grizal"] == two["runs"][0 if variant == "grizal" else 1]["grizal"]
    assert results_table(one) == results_table(two)


def test_a_worker_error_reaches_the_parent_as_one_line(tiny_world, tmp_path):
    values = _values(tiny_world, closed_set=False, workers=2)
    values["model"].update(width=30, heads=4)  # raised in the workers, when each builds its model
    with pytest.raises(UserError, match="params.yaml: .*divisible") as err:
        run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path, log=lambda _m: None)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("workers", [0, "2", True, 1.5])
def test_bad_workers_setting(tiny_world, tmp_path, workers):
    with pytest.raises(UserError, match="results.workers must be an integer >= 1"):
        run_grid(_values(tiny_world, workers=workers), tiny_world["index"], tiny_world["features"], tmp_path)
