"""The JSON Schema editors read (params.schema.json) is the models' own, and every params file the project ships
validates against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.paper_settings import SETTINGS

from pipeline.common import load_params
from pipeline.config import compose_params
from pipeline.params_schema import SCHEMAS, ParamsFile, json_schema, validate_params

ROOT = Path(__file__).resolve().parents[1]
# params.yaml and every paper setting DVC composes from conf/ (docs/config-groups.md)
SHIPPED = {"params.yaml": None, **{" ".join(overrides): overrides for overrides in SETTINGS.values()}}


def test_the_committed_schema_is_up_to_date():
    committed = json.loads((ROOT / "params.schema.json").read_text())
    assert committed == json_schema(), "regenerate: python -m pipeline.json_schema > params.schema.json"


def test_the_command_writes_it():
    out = subprocess.run([sys.executable, "-m", "pipeline.json_schema"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == json_schema()
    bad = subprocess.run([sys.executable, "-m", "pipeline.json_schema", "--jsn"], cwd=ROOT, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "usage:" in bad.stderr


def test_params_yaml_points_editors_at_it():
    first = (ROOT / "params.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=params.schema.json"


def test_the_schema_is_complete_and_its_references_resolve():
    schema = json.loads((ROOT / "params.schema.json").read_text())
    assert set(schema["properties"]) == set(SCHEMAS)
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs and all(ref.split("/")[-1] in schema["$defs"] for ref in refs)
    # the bounds the stages check are the schema's: an editor flags what the stage would refuse
    train = schema["$defs"]["TrainParams"]["properties"]
    assert train["epochs"]["minimum"] == 1 and train["precision"]["enum"] == ["auto", "fp32", "bf16"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_params_file_validates_against_it(name):
    overrides = SHIPPED[name]
    params = load_params(ROOT / name) if overrides is None else compose_params(overrides, ROOT / "conf")
    ParamsFile.model_validate(params, context={"params": params})
    validate_params(params, SCHEMAS, name)
    try:
        import jsonschema
    except ImportError:  # not in this environment: the models above are the schema's source
        return
    jsonschema.validate(params, json.loads((ROOT / "params.schema.json").read_text()))


def test_every_paper_setting_is_validated():
    assert len(SHIPPED) == 6
