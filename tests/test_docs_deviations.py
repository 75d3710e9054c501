"""The deviations table (docs/deviations.md) is generated from docs/deviations.yaml and the resolved params: it fails
here when params.yaml or a paper config changes a listed setting without the page being regenerated, or when a row's
claim about the code no longer holds."""

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def generator():
    spec = importlib.util.spec_from_file_location("deviations_table", ROOT / "docs" / "deviations_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_is_what_the_source_and_the_resolved_params_give():
    table = generator()
    assert table.PAGE.read_text(encoding="utf-8") == table.render(), \
        "docs/deviations.md is stale: run python docs/deviations_table.py"


def test_every_claim_about_the_code_holds():
    assert generator().failed_checks() == []


def test_a_changed_setting_changes_its_row():
    table = generator()
    demo, configs = table.resolved()
    row = {"what": "x", "paper": "N = 7", "keys": ["model.vle_layers"]}
    before = table.ours(row, demo, configs)
    demo["model"]["vle_layers"] = demo["model"]["vle_layers"] + 1
    assert table.ours(row, demo, configs) != before


def test_the_departures_the_manual_must_list_are_rows():
    rows = yaml.safe_load((ROOT / "docs" / "deviations.yaml").read_text(encoding="utf-8"))
    keys = {key for row in rows for key in row.get("keys", [])}
    assert {"train.epochs", "model.width", "model.dropout", "evaluate.tious", "loss.temperature",
            "loss.tiou_smooth", "train.negatives_per_positive", "localization.nms", "generate.target_words",
            "loss.bce", "loss.infonce"} <= keys
    checked = {row["what"] for row in rows if row.get("checks")}
    assert {"VLE input and positions", "positions of Z_rgb and Z_optical", "Fourier block",
            "Table 6's depth grid", "what the columns measure", "sentence length"} <= checked


def test_a_broken_claim_is_reported(tmp_path, monkeypatch):
    table = generator()
    source = tmp_path / "deviations.yaml"
    source.write_text(yaml.safe_dump([{"what": "x", "paper": "p", "ours": "o", "checks": [
        {"file": "grizal/metrics.py", "contains": "no such line in the scorer"},
        {"module": "pipeline.priors.text_offline", "expr": "MAX_DEMO_WORDS", "equals": -1}]}]))
    monkeypatch.setattr(table, "SOURCE", source)
    assert len(table.failed_checks()) == 2
