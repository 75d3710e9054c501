"""The params DVC composes from conf/ with Hydra (docs/config-groups.md): the demo default and the paper's settings
are valid for every stage, equal what the `_base_` overlays resolved to before (tests/data/resolved_configs/), and
a bad override is one line and exit 2."""

import copy
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.paper_settings import SETTINGS

from grizal.localization import localization_config
from grizal.losses import loss_config
from grizal.model import ModelConfig
from pipeline.common import UserError, load_params
from pipeline.config import compose_params, composed_text
from pipeline.features.settings import extract_config
from pipeline.modelling.fit import TrainConfig
from pipeline.modelling.grid import VARIANTS
from pipeline.modelling.scoring import parse_tious, thresholds_from_params
from pipeline.priors.config import build_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
RESOLVED = ROOT / "tests" / "data" / "resolved_configs"
ALL = {"demo": [], **SETTINGS}


@functools.cache
def _composed(name: str) -> dict:
    return compose_params(ALL[name], CONF)


def composed(name: str) -> dict:
    return copy.deepcopy(_composed(name))


@pytest.mark.parametrize("name", ALL)
def test_composed_params_are_valid_for_every_stage(name):
    params, where = composed(name), f"conf ({name})"
    assert {"demo", "prepare", "generate", "extract", "model", "loss", "train", "localization", "evaluate",
            "results"} <= set(params)
    build_config(params["generate"], where)
    extract_config(params, where)
    ModelConfig.from_dict(params["model"])
    loss_config(params["loss"])
    TrainConfig.from_dict(params["train"], where)
    localization_config(params["localization"])
    assert set(params["results"]["variants"]) <= set(VARIANTS)
    thresholds = thresholds_from_params(params["evaluate"], where)
    assert all(0 < t < 1 for t in thresholds.scored)
    if params["prepare"]["dataset"] in ("thumos14", "activitynet"):
        assert str(params["prepare"]["split_setting"]) in ("75_25", "50_50")


@pytest.mark.parametrize("name", ALL)
def test_composed_params_average_their_protocols_thresholds(name):
    """ActivityNet: avg mAP over 0.5:0.05:0.95, columns 0.5/0.75/0.95; THUMOS14, demo: 0.3:0.1:0.7 both."""
    params = composed(name)
    thresholds = thresholds_from_params(params["evaluate"], name)
    if params["prepare"]["dataset"] == "activitynet":
        assert list(thresholds.averaged) == parse_tious("0.5:0.05:0.95")
        assert thresholds.reported == (0.5, 0.75, 0.95)
    elif params["prepare"]["dataset"] in ("thumos14", "demo"):
        assert list(thresholds.averaged) == list(thresholds.reported) == parse_tious("0.3:0.1:0.7")


@pytest.mark.parametrize("name", SETTINGS)
def test_each_paper_setting_equals_what_its_overlay_resolved_to(name):
    assert composed(name) == load_params(RESOLVED / f"{name}.yaml")


def test_there_is_a_stored_copy_for_every_setting_and_no_other():
    assert sorted(p.stem for p in RESOLVED.glob("*.yaml")) == sorted(SETTINGS)


def test_the_committed_params_yaml_is_the_composed_demo(monkeypatch):
    monkeypatch.chdir(ROOT)  # its header names conf/ as the command sees it
    expected = composed_text([], Path("conf"))
    assert (ROOT / "params.yaml").read_text() == expected, "regenerate: python -m pipeline.config"


def test_dvc_composes_from_the_same_place():
    """`dvc exp run` composes params.yaml from .dvc/config's hydra settings: the ones pipeline.config uses."""
    text = (ROOT / ".dvc" / "config").read_text()
    hydra = text[text.index("[hydra]"):]
    assert "enabled = true" in hydra and "config_dir = conf" in hydra and "config_name = config" in hydra


@pytest.mark.parametrize("dataset", ["thumos14", "activitynet"])
def test_split_settings_differ_only_in_the_split_setting(dataset):
    a, b = composed(f"{dataset}_75_25"), composed(f"{dataset}_50_50")
    assert (a["prepare"]["split_setting"], b["prepare"]["split_setting"]) == ("75_25", "50_50")
    b["prepare"]["split_setting"] = "75_25"
    assert a == b


def test_paper_settings_compose_to_the_paper_values():
    """What the docs say each setting sets."""
    expected_T = {"thumos14": 256, "activitynet": 100, "charades": 256}
    for name in SETTINGS:
        params = composed(name)
        assert params["extract"]["clip"] == {**params["extract"]["clip"], "model": "ViT-B-32-quickgelu",
                                             "pretrained": "openai"}
        assert params["extract"]["flow"]["method"] == "raft_large"
        assert params["extract"]["T"] == expected_T[params["prepare"]["dataset"]]
        assert (params["model"]["width"], params["model"]["vle_layers"]) == (512, 7)
        assert params["generate"]["text_backend"] == params["generate"]["image_backend"] == "openai"
        annotations = params["prepare"].get("annotations")
        if annotations and not Path(annotations).is_absolute():
            assert (ROOT / annotations).is_file(), f"{name}: {annotations} is not in the repository"


def test_charades_prepare_is_its_own_not_merged_with_the_demo():
    prepare = composed("charades_sta")["prepare"]
    assert prepare["dataset"] == "charades"
    assert not {"split_setting", "split_id"} & set(prepare)
    assert prepare["annotations"] == "/data/charades/annotations"  # its own folder, not a base's JSON


def test_a_group_can_be_switched_alone():
    params = compose_params(["dataset=thumos14", "size=demo", "priors=offline", "prepare.split_id=3"], CONF)
    demo = composed("demo")
    assert params["model"] == demo["model"] and params["train"] == demo["train"]
    assert params["generate"] == demo["generate"]
    assert params["extract"]["clip"]["model"] == "ViT-B-32-quickgelu"  # the encoders group stays the paper's
    assert (params["prepare"]["dataset"], params["prepare"]["split_id"]) == ("thumos14", 3)


@pytest.mark.parametrize("overrides, says", [
    (["dataset=thumos"], "dataset=thumos: no such option in conf/dataset/ (activitynet, charades, demo, thumos14) "
                         "(did you mean 'thumos14'?)"),
    (["datset=thumos14"], "datset: unknown key (did you mean 'dataset'?)"),
    (["prepare.splt_id=3"], "prepare.splt_id: unknown key (did you mean 'prepare.split_id'?)"),
    (["trian.epochs=3"], "trian.epochs: unknown key (did you mean 'train.epochs'?)"),
    (["split=50_50"], "split=50_50: Hydra reads 50_50 as the number 5050, not an option name; conf/split/ has "
                      "50-50, 75-25"),
    (["dataset=charades", "split=50-50"], "split: nothing in this composition chooses a split"),
    (["prepare.split_id=="], "not a Hydra override"),
])
def test_a_bad_override_is_one_line(overrides, says):
    with pytest.raises(UserError) as err:
        compose_params(overrides, CONF)
    assert str(err.value.where) == str(CONF) and "\n" not in str(err.value)
    assert err.value.problem.startswith(says), err.value.problem


def test_a_missing_primary_config_is_named(tmp_path):
    with pytest.raises(UserError) as err:
        compose_params([], tmp_path)
    assert str(err.value.where) == str(tmp_path / "config.yaml") and "not found" in err.value.problem


# --- python -m pipeline.config -------------------------------------------------------------------------------------

def run_config(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    probe = ("import runpy, sys\n"
             f"sys.argv[1:] = {list(args)!r}\n"
             "try:\n    runpy.run_module('pipeline.config', run_name='__main__')\n"
             "finally:\n    print('HEAVY', [m for m in ('torch', 'cv2', 'open_clip') if m in sys.modules], "
             "file=sys.stderr)\n")
    return subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_writes_params_yaml_and_refuses_bad_input_leaving_it_as_it_was(tmp_path):
    (tmp_path / "conf").symlink_to(CONF)
    done = run_config("dataset=activitynet", "split=50-50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr
    written = (tmp_path / "params.yaml").read_text()
    assert "`python -m pipeline.config dataset=activitynet split=50-50`" in written.splitlines()[1]
    assert yaml.safe_load(written) == load_params(RESOLVED / "activitynet_50_50.yaml")

    bad = run_config("train.epochs=ten", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[0] == "error: conf: train.epochs: expected an integer >= 1, got 'ten'"
    assert "Traceback" not in bad.stderr
    assert (tmp_path / "params.yaml").read_text() == written  # left as it was


def test_an_old_overlay_is_refused_with_what_to_do_instead(tmp_path):
    old = tmp_path / "mine.yaml"
    old.write_text("_base_: thumos14_75_25.yaml\nprepare: {video_dir: /my/videos}\n")
    with pytest.raises(UserError) as err:
        load_params(old)
    assert "\n" not in str(err.value) and "python -m pipeline.config dataset=thumos14" in err.value.problem


def test_the_command_writes_what_dvc_exp_run_writes_under_its_header(tmp_path, monkeypatch):
    """DVC's own composition (the function `dvc exp run` calls) gives the same bytes, less our header comments."""
    from dvc.utils.hydra import compose_and_dump

    overrides = ["dataset=activitynet", "split=50-50"]
    compose_and_dump(tmp_path / "params.yaml", str(CONF), None, "config", "", overrides)
    monkeypatch.chdir(ROOT)
    ours = composed_text(overrides, Path("conf")).splitlines(keepends=True)
    assert ours[0].startswith("# yaml-language-server") and ours[1].startswith("# Composed from conf/")
    assert "".join(ours[3:]) == (tmp_path / "params.yaml").read_text()


@pytest.mark.parametrize("file, text, where, says", [
    ("size/paper.yaml", "# @package _global_\nmodel: [unclosed\n", "size/paper.yaml", "not valid YAML"),
    ("size/paper.yaml", "model:\n  width: 512\n", "size", "start each file there with `# @package _global_`"),
])
def test_a_broken_group_file_is_named_in_one_line(tmp_path, file, text, where, says):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / file).write_text(text)
    with pytest.raises(UserError) as err:
        compose_params(["dataset=thumos14"], conf)
    assert str(err.value.where) == str(conf / where) and says in err.value.problem and "\n" not in str(err.value)
