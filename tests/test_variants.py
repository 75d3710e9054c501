"""results.variants: built-in names or variants declared in params (section overrides, own feature folders)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from support.params_edit import grid_values

from pipeline.common import UserError
from pipeline.modelling.grid import RUN_FORMAT, grid_jobs, run_grid, run_key
from pipeline.modelling.variants import BUILT_IN, Variant, resolve_variants, variant_of
from pipeline.params_schema import VARIANTS as SCHEMA_VARIANTS
from pipeline.params_schema import validate_section


def test_the_schema_knows_every_built_in_variant():
    assert set(SCHEMA_VARIANTS) == set(BUILT_IN)


def test_paper_rows_are_built_in():
    assert BUILT_IN["w/o Fourier and OF"] == {"model": {"use_fourier": False, "use_flow": False}}
    assert BUILT_IN["supervised only"] == {"loss": {"objective": "supervised"}}
    assert [BUILT_IN[f"k={k}"]["model"]["k"] for k in (1, 2, 3, 4, 8)] == [1, 2, 3, 4, 8]
    assert BUILT_IN["N=3"] == {"model": {"vle_layers": 3}}


def test_a_list_names_built_ins_and_a_mapping_declares_variants():
    assert list(resolve_variants({"variants": ["GRIZAL", "w/o flow"]})) == ["GRIZAL", "w/o flow"]
    declared = resolve_variants({"variants": {
        "GRIZAL": {}, "w/o images": None, "deep": {"model": {"vle_layers": 3}, "train": {"epochs": 2}},
        "gafnet unit": {"features": "cache/features-gafnet"}}})
    assert list(declared) == ["GRIZAL", "w/o images", "deep", "gafnet unit"]
    assert declared["w/o images"].overrides == {"model": {"use_images": False}}
    values = {"model": {"width": 64, "vle_layers": 2}, "train": {"epochs": 9, "lr": 0.1}}
    merged = declared["deep"].settings(values)
    assert merged == {"model": {"width": 64, "vle_layers": 3}, "train": {"epochs": 2, "lr": 0.1}}
    assert values["model"]["vle_layers"] == 2  # left as it was
    assert str(declared["gafnet unit"].features_dir("cache/features")) == "cache/features-gafnet"
    assert str(declared["deep"].features_dir("cache/features")) == "cache/features"
    assert variant_of({"variants": ["w/o flow"]}, "GRIZAL") == Variant("GRIZAL")


@pytest.mark.parametrize(("variants", "message"), [
    (["GRIZAL", "w/o colour"], "unknown variant 'w/o colour'"),
    ({"x": {"extract": {"T": 3}}}, "unknown key 'extract'.*own feature stores"),
    ({"x": {"model": 3}}, r"results.variants.x.model: expected a mapping"),
    ({"nope": None}, "null means the built-in variant"),
    ({"x": {"features": 3}}, "features: expected a folder path"),
    ({"a b": {}, "a-b": {}}, "would share the run folder"),
    ("GRIZAL", "expected a list of names or a mapping"),
])
def test_bad_variants_are_one_line(variants, message):
    with pytest.raises(UserError, match=message):
        resolve_variants({"variants": variants}, "p.yaml")


def test_the_schema_accepts_declared_variants_and_names_bad_ones():
    params = {"prepare": {"protocol": "closed"},
              "results": {"variants": {"GRIZAL": {}, "k=1": None, "n3": {"model": {"vle_layers": 3}}}}}
    assert validate_section(params, "results", "p.yaml")["variants"]["n3"] == {"model": {"vle_layers": 3}}
    params["results"]["variants"]["bad"] = {"generate": {"k": 8}}
    with pytest.raises(UserError, match="results.variants.bad.generate: unknown key"):
        validate_section(params, "results", "p.yaml")


class _Split:
    def to_json(self):
        return {"protocol": "open", "split_id": 0}


def test_run_keys_of_shipped_variants_are_those_of_the_model_only_formula():
    """The keys finished runs were stored under before variants were declarable: such runs are still reused."""
    settings = {"model": {"width": 8, "use_images": True}, "loss": {"bce": 1.0}, "train": {}, "localization": {},
                "tious": [0.5]}
    job = ("open", 0, "w/o images")
    variant = resolve_variants({"variants": ["w/o images"]})["w/o images"]
    from pipeline.modelling.grid import resolved_settings  # noqa: F401  (the grid resolves the variant's values)

    old_model = settings["model"] | {"use_images": False}
    old = hashlib.sha256(json.dumps({"format": RUN_FORMAT, "job": list(job), "split": _Split().to_json(),
                                     "inputs": {}, "code": "c", **settings, "model": old_model},
                                    sort_keys=True, default=str).encode()).hexdigest()
    new_settings = {**settings, "model": variant.settings(settings)["model"]}
    assert run_key(new_settings, {}, "c", job, _Split()) == old


def _values(tiny_world, variants):
    return grid_values(tiny_world, variants=variants, closed_set=False)


@pytest.mark.slow
def test_a_grid_of_declared_variants_runs_each_on_its_features_and_reuses_them(tiny_world, tmp_path):
    other = tmp_path / "features-copy"
    shutil.copytree(tiny_world["features"], other)
    variants = {"GRIZAL": {}, "supervised only": None,
                "k1 on a copy": {"model": {"k": 1}, "features": str(other)}}
    values = _values(tiny_world, variants)
    assert grid_jobs(values) == [("open", 0, "GRIZAL", 0), ("open", 0, "supervised only", 0),
                                 ("open", 0, "k1 on a copy", 0)]
    logs: list[str] = []
    grid = run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "out", log=logs.append)
    assert [r["variant"] for r in grid["runs"]] == list(variants)
    keys = {json.loads((tmp_path / "out" / "split_0" / slug / "seed_0" / "run.json").read_text())["key"]
            for slug in ("grizal", "supervised_only", "k1_on_a_copy")}
    assert len(keys) == 3
    logs.clear()
    run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "out", log=logs.append)
    assert all(line.endswith("reused") for line in logs) and len(logs) == 3
    values["results"]["variants"]["k1 on a copy"]["model"]["k"] = 2  # one variant changed: only its run is redone
    logs.clear()
    run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "out", log=logs.append)
    assert [line.endswith("reused") for line in logs] == [True, True, False]


def test_a_bad_override_fails_before_any_run(tiny_world, tmp_path):
    values = _values(tiny_world, {"GRIZAL": {}, "bad": {"model": {"use_flow": "no"}}})
    with pytest.raises(UserError, match="results.variants.bad: model.use_flow must be true or false"):
        run_grid(values, tiny_world["index"], tiny_world["features"], tmp_path / "out", log=lambda _m: None)
    assert not (tmp_path / "out").exists()
