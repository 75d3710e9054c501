"""Every stage's door, through its real command line: a bad value in any params section the stage reads is one
line `error: <the file passed with --params>: <key>: ...` and exit 2, with no traceback, before any work (the
folders the stages would read next do not exist, so an error from later would read differently).

tests/test_params_schema.py walks the full table of bad values per section; here one or two per section per stage
check that each door really validates what it reads, and names the file passed (never params.yaml).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.params_edit import DELETE, set_dotted
from typer.testing import CliRunner

from pipeline import demo_world, evaluate, extract, generate, prepare, results, train
from pipeline.apps import localize
from pipeline.common import load_params

ROOT = Path(__file__).resolve().parents[1]


def _args(stage: str, params: Path, tmp: Path) -> list[str]:
    absent = tmp / "absent"
    return {
        "demo_world": ["--params", params, "--out", tmp / "demo"],
        "prepare": ["--params", params, "--out", tmp / "prepare"],
        "generate": ["--params", params, "--dry-run"],
        "extract rgb": ["rgb", "--params", params],
        "extract flow": ["flow", "--params", params],
        "extract priors": ["priors", "--params", params],
        "extract videos": ["videos", "--videos", absent, "--out", tmp / "features", "--params", params],
        "train": ["--params", params, "--prepare", absent, "--features", tmp / "features", "--out", tmp / "train",
                  "--live", tmp / "live", "--no-progress"],
        "evaluate": ["--params", params, "--prepare", absent, "--features", absent, "--model", absent / "model.pt",
                     "--out", tmp / "evaluate", "--metrics", tmp / "metrics.json"],
        "results": ["--params", params, "--prepare", absent, "--features", tmp / "features", "--out", tmp / "r"],
        "localize": ["localize", absent / "video.mp4", "--action", "a dog", "--params", params,
                     "--checkpoint", absent / "model.pt", "--cache-dir", tmp / "cache"],
    }[stage]


APPS = {"demo_world": demo_world.app, "prepare": prepare.app, "generate": generate.app, "train": train.app,
        "evaluate": evaluate.app, "results": results.app, "localize": localize.app}


def _app(stage: str):
    return extract.app if stage.startswith("extract") else APPS[stage]


# (stage, dotted key to set, value, the key the message names)
CASES = [
    ("demo_world", "demo.fps", 0, "demo.fps"),
    ("demo_world", "demo.colour", "red", "demo.colour"),
    ("demo_world", "prepare.dataset", "thumos", "prepare.dataset"),
    ("prepare", "prepare.split_id", "zero", "prepare.split_id"),
    ("prepare", "prepare.split_id", 7, "prepare.split_id"),  # the demo world has splits 0..3
    ("prepare", "prepare.protocol", "opn", "prepare.protocol"),
    ("generate", "generate.k", 0, "generate.k"),
    ("generate", "generate.concurency", 4, "generate.concurency"),
    ("generate", "prepare.allow_empty", "yes", "prepare.allow_empty"),
    ("extract rgb", "extract.T", 0, "extract.T"),
    ("extract flow", "extract.flow.method", "farnback", "extract.flow.method"),
    ("extract priors", "extract.priors.name_template", "a {action}", "extract.priors.name_template"),
    ("extract priors", "extract.clip.modle", "ViT-B-32", "extract.clip.modle"),
    ("extract videos", "extract.frames.sample_fps", 0, "extract.frames.sample_fps"),
    ("train", "train.epochs", "ten", "train.epochs"),
    ("train", "train.betas", [0.9], "train.betas"),
    ("train", "model.width", 130, "model.width"),
    ("train", "model.widht", 64, "model.widht"),
    ("train", "loss.temperature", 0, "loss.temperature"),
    ("train", "model.k", 5, "model.k"),  # more than the 4 pairs the priors store holds
    ("evaluate", "evaluate.tious", [], "evaluate.tious"),
    ("evaluate", "evaluate.n_plots", -1, "evaluate.n_plots"),
    ("evaluate", "localization.nms", "soft-nms", "localization.nms"),
    ("results", "prepare.split_setting", "75-25", "prepare.split_setting"),
    ("results", "model.dropout", 1.0, "model.dropout"),
    ("results", "loss.objective", "supervise", "loss.objective"),
    ("results", "train.warmup_fraction", 2, "train.warmup_fraction"),
    ("results", "localization.thresholds", [0, 0.5], "localization.thresholds[0]"),
    ("results", "evaluate.tious", DELETE, "evaluate.tious"),
    ("results", "results.workers", 0, "results.workers"),
    ("results", "results.splits", [0, 9], "results.splits"),  # the demo world has splits 0..3
    ("results", "model.k", 5, "model.k"),
    ("localize", "localization.cross_class", "geometrc", "localization.cross_class"),
    ("localize", "extract.clip.batch_size", 0, "extract.clip.batch_size"),
    ("localize", "generate.text_backend", "opanai", "generate.text_backend"),
]
# The sections each stage reads, and so must check: every one appears in a case of that stage.
READS = {
    "demo_world": {"demo", "prepare"},
    "prepare": {"prepare"},
    "generate": {"generate", "prepare"},
    "extract": {"extract"},
    "train": {"train", "model", "loss"},
    "evaluate": {"evaluate", "localization"},
    "results": {"prepare", "model", "loss", "train", "localization", "evaluate", "results"},
    "localize": {"generate", "extract", "localization"},
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return load_params(ROOT / "params.yaml")


def _priors_store(features: Path, k: int) -> None:
    """Just the root of a priors store holding k pairs per class: all the door reads of it."""
    from pipeline.features.store import PRIORS_KIND, SCHEMA_VERSION

    root = features / "priors.zarr"
    root.mkdir(parents=True)
    attrs = {"kind": PRIORS_KIND, "schema_version": SCHEMA_VERSION, "k": k}
    (root / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}))


def test_every_section_a_stage_reads_has_a_case():
    covered: dict[str, set[str]] = {}
    for stage, path, _value, _key in CASES:
        covered.setdefault(stage.split()[0], set()).add(path.split(".")[0])
    assert covered == READS


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}:{c[1]}={c[2]!r}" if c[2] is not DELETE
                         else f"{c[0]}:{c[1]}<deleted>")
def test_a_bad_value_stops_the_stage_at_its_door(case, shipped, tmp_path, monkeypatch):
    stage, path, value, key = case
    params = copy.deepcopy(shipped)
    set_dotted(params, path, value)
    monkeypatch.chdir(tmp_path)  # relative paths of the params (cache/...) point at nothing
    file = tmp_path / "configs" / "mine.yaml"
    file.parent.mkdir()
    file.write_text(yaml.safe_dump(params, sort_keys=False))
    _priors_store(tmp_path / "features", k=params["model"]["k"] if path != "model.k" else 4)
    result = CliRunner().invoke(_app(stage), [str(a) for a in _args(stage, file, tmp_path)])
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.output, result.exception)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {file}: {key}: "), lines[0]
    assert "Traceback" not in result.output
    if value is not DELETE and "unknown key" not in lines[0] and "missing" not in lines[0]:
        assert "got " in lines[0], lines[0]


def test_a_bad_option_of_the_standalone_extract_is_named_as_such(tmp_path):
    result = CliRunner().invoke(extract.app, ["videos", "--videos", str(tmp_path), "--out", str(tmp_path / "o"),
                                              "--sample-fps", "0"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: command line: extract.frames.sample_fps: expected a number >= "
                                          "0.001 or null, got 0.0"]


def test_a_bad_seed_override_is_named_as_such(tmp_path):
    result = CliRunner().invoke(demo_world.app, ["--params", str(ROOT / "params.yaml"), "--seed", "-1",
                                                 "--out", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: --seed: demo.seed: expected an integer >= 0, got -1"]
    assert not (tmp_path / "demo").exists()


def test_the_evaluate_door_checks_the_checkpoint_k_against_the_stored_pairs(tmp_path):
    """The k that counts at evaluation is the checkpoint's: the one line names the checkpoint."""
    from pipeline.modelling.fit import check_prior_pairs

    _priors_store(tmp_path, k=2)
    check_prior_pairs({"k": 2}, tmp_path, "model.pt")
    check_prior_pairs({"k": 4, "use_texts": False, "use_images": False}, tmp_path, "model.pt")  # pairs unread
    with pytest.raises(Exception) as err:
        check_prior_pairs({"k": 4}, tmp_path, "cache/train/model.pt")
    assert str(err.value) == (f"cache/train/model.pt: model.k: expected at most 2 (the prior pairs in "
                              f"{tmp_path / 'priors.zarr'}), got 4")
