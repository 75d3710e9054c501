"""Every shipped params file (the demo default and the paper's settings under configs/) is valid for every stage;
configs/ are `_base_` overlays that `load_params` and `python -m pipeline.config` resolve."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grizal.localization import localization_config
from grizal.losses import loss_config
from grizal.model import ModelConfig
from pipeline.common import BASE_KEY, RESOLVED_HEADER, UserError, load_params, merge_params
from pipeline.features.settings import extract_config
from pipeline.modelling.fit import TrainConfig
from pipeline.modelling.grid import VARIANTS
from pipeline.modelling.scoring import parse_tious, thresholds_from_params
from pipeline.priors.config import build_config

ROOT = Path(__file__).resolve().parents[1]
PARAMS = [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_params_file_is_valid_for_every_stage(path):
    params = load_params(path)
    assert {"demo", "prepare", "generate", "extract", "model", "loss", "train", "localization", "evaluate",
            "results"} <= set(params)
    build_config(params["generate"], path)
    extract_config(params, str(path))
    ModelConfig.from_dict(params["model"])
    loss_config(params["loss"])
    TrainConfig.from_dict(params["train"], str(path))
    localization_config(params["localization"])
    assert set(params["results"]["variants"]) <= set(VARIANTS)
    thresholds = thresholds_from_params(params["evaluate"], path)
    assert all(0 < t < 1 for t in thresholds.scored)
    if params["prepare"]["dataset"] in ("thumos14", "activitynet"):
        assert str(params["prepare"]["split_setting"]) in ("75_25", "50_50")


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_params_file_averages_its_protocols_thresholds(path):
    """ActivityNet: avg mAP over 0.5:0.05:0.95, columns 0.5/0.75/0.95; THUMOS14, demo: 0.3:0.1:0.7 both."""
    params = load_params(path)
    thresholds = thresholds_from_params(params["evaluate"], path)
    if params["prepare"]["dataset"] == "activitynet":
        assert list(thresholds.averaged) == parse_tious("0.5:0.05:0.95")
        assert thresholds.reported == (0.5, 0.75, 0.95)
    elif params["prepare"]["dataset"] in ("thumos14", "demo"):
        assert list(thresholds.averaged) == list(thresholds.reported) == parse_tious("0.3:0.1:0.7")


# --- configs/ are overlays: only what differs, resolved through `_base_` ---------------------------------------------

CONFIGS = ROOT / "configs"
OVERLAYS = sorted(CONFIGS.glob("*.yaml"))
# Restated on purpose although params.yaml has the same value: each split pair names its setting.
RESTATED = {("prepare", "split_setting")}


def leaves(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
    """Every non-mapping value (and empty mapping) by its key path."""
    out: dict[tuple, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def own_keys(path: Path) -> dict:
    """The file as written, without `_base_`."""
    own = yaml.safe_load(path.read_text())
    own.pop(BASE_KEY, None)
    return own


def inherited(path: Path) -> dict:
    """What the file's `_base_` chain resolves to before its own keys apply."""
    bases = yaml.safe_load(path.read_text()).get(BASE_KEY, [])
    out: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        out = merge_params(out, load_params(path.parent / base), base)
    return out


@pytest.mark.parametrize("path", [*OVERLAYS, *sorted((CONFIGS / "_base_").glob("*.yaml"))], ids=lambda p: p.name)
def test_overlay_holds_only_what_differs_from_its_bases(path):
    base = leaves(inherited(path))
    assert base, f"{path.name} has no _base_"
    replaced = {key for key, value in own_keys(path).items() if isinstance(value, dict) and value.get("_delete_")}
    same = [key for key, value in leaves(own_keys(path)).items()
            if key[0] not in replaced and key in base and base[key] == value and key not in RESTATED]
    assert not same, f"{path.name} restates inherited values: {same}"


@pytest.mark.parametrize("dataset", ["thumos14", "activitynet"])
def test_split_pairs_differ_only_in_the_split_setting(dataset):
    a, b = (CONFIGS / f"{dataset}_75_25.yaml"), (CONFIGS / f"{dataset}_50_50.yaml")
    assert own_keys(a) == {"prepare": {"split_setting": "75_25"}}
    assert own_keys(b) == {"prepare": {"split_setting": "50_50"}}
    ra, rb = leaves(load_params(a)), leaves(load_params(b))
    assert {k for k in ra.keys() | rb.keys() if ra.get(k) != rb.get(k)} == {("prepare", "split_setting")}


def test_paper_settings_resolve_to_the_paper_values():
    """What the README says each config sets, read from the resolved files (not from the overlays)."""
    expected_T = {"thumos14": 256, "activitynet": 100, "charades": 256}
    for path in OVERLAYS:
        params = load_params(path)
        assert params["extract"]["clip"] == {**params["extract"]["clip"], "model": "ViT-B-32-quickgelu",
                                             "pretrained": "openai"}
        assert params["extract"]["flow"]["method"] == "raft_large"
        assert params["extract"]["T"] == expected_T[params["prepare"]["dataset"]]
        assert (params["model"]["width"], params["model"]["vle_layers"]) == (512, 7)
        assert params["generate"]["text_backend"] == params["generate"]["image_backend"] == "openai"
        annotations = params["prepare"].get("annotations")
        if annotations and not Path(annotations).is_absolute():
            assert (ROOT / annotations).is_file(), f"{path.name}: {annotations} is not in the repository"


def test_charades_prepare_is_replaced_not_merged():
    prepare = load_params(CONFIGS / "charades_sta.yaml")["prepare"]
    assert prepare["dataset"] == "charades"
    assert not {"split_setting", "split_id", "_delete_"} & set(prepare)
    assert prepare["annotations"] == "/data/charades/annotations"  # its own folder, not a base's JSON


# --- `_base_` semantics, on files written here --------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_merges_mappings_and_replaces_lists_and_scalars(tmp_path):
    write(tmp_path / "defaults.yaml", "a: {x: 1, y: [1, 2], z: {p: 1, q: 2}, n: 5}\nb: keep\nc: [9]\n")
    top = write(tmp_path / "sub" / "top.yaml",
                "_base_: ../defaults.yaml\na: {y: [3], z: {q: 20}, n: null, new: 1}\nc: []\n")
    params = load_params(top)
    assert params == {"a": {"x": 1, "y": [3], "z": {"p": 1, "q": 20}, "n": None, "new": 1}, "b": "keep", "c": []}
    assert list(params) == ["a", "b", "c"] and list(params["a"]) == ["x", "y", "z", "n", "new"]


def test_later_bases_win_then_the_file_itself(tmp_path):
    write(tmp_path / "one.yaml", "s: {a: 1, b: 1, c: 1}\n")
    write(tmp_path / "two.yaml", "s: {b: 2, c: 2}\n")
    top = write(tmp_path / "top.yaml", "_base_: [one.yaml, two.yaml]\ns: {c: 3}\n")
    assert load_params(top) == {"s": {"a": 1, "b": 2, "c": 3}}


def test_chains_resolve_relative_to_each_file(tmp_path):
    write(tmp_path / "root.yaml", "s: {a: 1, b: 1}\n")
    write(tmp_path / "_base_" / "mid.yaml", "_base_: ../root.yaml\ns: {b: 2}\n")
    top = write(tmp_path / "top.yaml", "_base_: _base_/mid.yaml\ns: {c: 3}\n")
    assert load_params(top) == {"s": {"a": 1, "b": 2, "c": 3}}


def test_delete_replaces_a_mapping_instead_of_merging(tmp_path):
    write(tmp_path / "base.yaml", "s: {a: 1, b: {c: 1}}\nt: {x: 1}\n")
    top = write(tmp_path / "top.yaml", "_base_: base.yaml\ns: {_delete_: true, d: 4}\nt: {_delete_: false, y: 2}\n")
    assert load_params(top) == {"s": {"d": 4}, "t": {"x": 1, "y": 2}}


@pytest.mark.parametrize("files, where, says", [
    ({"a.yaml": "_base_: b.yaml\n", "b.yaml": "_base_: a.yaml\n"}, "b.yaml",
     "_base_ cycle: a.yaml -> b.yaml -> a.yaml"),
    ({"a.yaml": "_base_: a.yaml\n"}, "a.yaml", "_base_ cycle"),
    ({"a.yaml": "_base_: [missing.yaml]\n"}, "a.yaml", "_base_ missing.yaml not found"),
    ({"a.yaml": "_base_: b.yaml\n", "b.yaml": "_base_: gone.yaml\n"}, "b.yaml", "_base_ gone.yaml not found"),
    ({"a.yaml": "_base_: {x: 1}\n"}, "a.yaml", "_base_ must be a path or a list of paths"),
    ({"a.yaml": "_base_: b.yaml\n", "b.yaml": "s: [unclosed\n"}, "b.yaml", "not valid YAML"),
    ({"a.yaml": "_base_: b.yaml\ns: {_delete_: yes please}\n", "b.yaml": "s: {}\n"}, "a.yaml", "_delete_ must be"),
    ({"a.yaml": "_delete_: true\n"}, "a.yaml", "_delete_ belongs inside a mapping"),
])
def test_bad_chains_say_which_file_in_one_line(tmp_path, monkeypatch, files, where, says):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(UserError) as err:
        load_params("a.yaml")
    assert err.value.where == where and says in err.value.problem and "\n" not in str(err.value)


def test_a_resolved_file_is_refused_as_a_base(tmp_path, monkeypatch):
    """After `--out params.yaml`, params.yaml holds one setting's values; another overlay must not inherit them."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "params.yaml", f"{RESOLVED_HEADER}configs/x.yaml (an overlay)\ns: {{a: 1}}\n")
    write(tmp_path / "configs" / "y.yaml", "_base_: ../params.yaml\n")
    assert load_params("params.yaml") == {"s": {"a": 1}}
    with pytest.raises(UserError) as err:
        load_params("configs/y.yaml")
    assert err.value.where == "params.yaml" and "configs/x.yaml" in err.value.problem
    assert "git checkout params.yaml" in err.value.problem


# --- python -m pipeline.config -------------------------------------------------------------------------------------

def run_config(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    probe = ("import runpy, sys\n"
             f"sys.argv[1:] = {list(args)!r}\n"
             "try:\n    runpy.run_module('pipeline.config', run_name='__main__')\n"
             "finally:\n    print('HEAVY', [m for m in ('torch', 'cv2', 'open_clip') if m in sys.modules], "
             "file=sys.stderr)\n")
    return subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_prints_the_resolved_params_and_they_load_back(tmp_path):
    done = run_config("configs/thumos14_50_50.yaml")
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    assert done.stdout.startswith(f"{RESOLVED_HEADER}configs/thumos14_50_50.yaml ")
    assert "python -m pipeline.config configs/thumos14_50_50.yaml" in done.stdout.splitlines()[1]
    printed = write(tmp_path / "printed.yaml", done.stdout)
    assert load_params(printed) == load_params(CONFIGS / "thumos14_50_50.yaml")
    assert list(load_params(printed)) == list(load_params(ROOT / "params.yaml"))


def test_cli_switches_the_project_params_and_refuses_to_stack_on_its_own_output(tmp_path):
    write(tmp_path / "params.yaml", (ROOT / "params.yaml").read_text())
    for path in CONFIGS.rglob("*.yaml"):
        write(tmp_path / path.relative_to(ROOT), path.read_text())
    done = run_config("configs/activitynet_75_25.yaml", "--out", "params.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "params.yaml"
    assert "--out params.yaml" in written.read_text().splitlines()[1]
    assert load_params(written) == load_params(CONFIGS / "activitynet_75_25.yaml")

    again = run_config("configs/thumos14_75_25.yaml", "--out", "params.yaml", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.startswith("error: params.yaml: was resolved from configs/activitynet_75_25.yaml")
    assert load_params(written) == load_params(CONFIGS / "activitynet_75_25.yaml")  # left as it was


def test_cli_refuses_to_overwrite_the_overlay_and_names_a_missing_one():
    done = run_config("configs/thumos14_75_25.yaml", "--out", "configs/thumos14_75_25.yaml")
    assert done.returncode == 2 and done.stderr.startswith("error: configs/thumos14_75_25.yaml: is the overlay")
    missing = run_config("configs/nope.yaml")
    assert missing.returncode == 2 and missing.stderr.startswith("error: configs/nope.yaml: params file not found")
