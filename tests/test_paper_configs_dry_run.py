"""Every paper setting (conf/ config groups) gives a whole `dvc repro --dry` plan in a fresh copy of the project, and
DVC itself composes the settings: a `dvc exp run --queue` sweep over the published splits (docs/config-groups.md).

The user's data (the /data/... paths of a config) is stood in for by empty files and folders at the same place
under a temporary folder: a dry run hashes deps, it reads no content. DVC 3.67 cannot dry-run a stage whose deps
another stage has not made yet (its run cache hashes every dep: treeverse/dvc#9818), so the plan of a fresh
pipeline is `dvc repro --dry --force-downstream`: each stage that would run marks what depends on it to run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.paper_settings import SETTINGS
from support.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
FOLDER_KEYS = {"video_dir"}  # folders; every other /data path of a config is a file ...
FOLDER_KEYS_BY_DATASET = {"charades": {"annotations"}}  # ... except Charades-STA's annotation folder


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dest = copy_project(tmp_path_factory.mktemp("project"))
    (dest / "dvc.lock").unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)
    return dest, env


def _stand_in_for_user_data(params: dict, data_root: Path) -> None:
    folders = FOLDER_KEYS | FOLDER_KEYS_BY_DATASET.get(params["prepare"]["dataset"], set())

    def place(value, key):
        if isinstance(value, list):
            return [place(v, key) for v in value]
        if not (isinstance(value, str) and value.startswith("/data/")):
            return value
        path = data_root / value.removeprefix("/")
        if key in folders:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        return str(path)

    for section in params.values():
        if isinstance(section, dict):
            for key, value in section.items():
                section[key] = place(value, key)


@pytest.mark.parametrize("setting", SETTINGS)
def test_a_fresh_project_dry_runs_every_stage(project, setting, tmp_path):
    dest, env = project
    subprocess.run([sys.executable, "-m", "pipeline.config", *SETTINGS[setting]], cwd=dest, env=env, check=True,
                   capture_output=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    _stand_in_for_user_data(params, tmp_path)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    result = subprocess.run(["dvc", "repro", "--dry", "--force-downstream"], cwd=dest, env=env,
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    planned = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage '")}
    stages = set(yaml.safe_load((dest / "dvc.yaml").read_text())["stages"])
    assert planned == stages


def test_the_readme_paper_config_workflow(project, tmp_path):
    """The README's switch to a paper setting, line by line: compose it, price the priors, print the whole plan
    (the user's /data paths stood in for after the first line, as the user's own override would set them)."""
    from support.doc_workflows import commands

    dest, env = project
    (dest / "params.yaml").write_text((ROOT / "params.yaml").read_text())  # a fresh clone's (the other tests edit it)
    lines = commands("paper-config")
    outputs = []
    for n, command in enumerate(lines):
        result = subprocess.run(command, shell=True, cwd=dest, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        assert "Traceback" not in result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
        if n == 0:
            params = yaml.safe_load((dest / "params.yaml").read_text())
            assert params["prepare"]["dataset"] == "thumos14" and params["prepare"]["split_setting"] == "75_25"
            _stand_in_for_user_data(params, tmp_path)
            (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "$" in outputs[1] or "cost" in outputs[1].lower()
    planned = {line.split("'")[1] for line in outputs[2].splitlines() if line.startswith("Running stage '")}
    assert planned == set(yaml.safe_load((dest / "dvc.yaml").read_text())["stages"])


def test_dvc_composes_a_queued_sweep_of_the_published_splits(tmp_path):
    """docs/config-groups.md's sweep, line by line: DVC's own Hydra composition queues one experiment per split,
    each with the whole THUMOS14 setting, and the experiments table names them by their group choices."""
    from support.doc_workflows import commands

    dest = copy_project(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(dest), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for git in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "demo"]):
        subprocess.run(["git", *git], cwd=dest, env=env, check=True)
    outputs = []
    for command in commands("paper-sweep"):
        result = subprocess.run(command, shell=True, cwd=dest, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        outputs.append(result.stdout)

    assert yaml.safe_load((dest / "params.yaml").read_text())["prepare"]["dataset"] == "demo"  # the workspace's own

    # The table names each experiment by what differs from the composed THUMOS14 setting (pipeline.composition):
    # nothing but the split id, so DVC composed the whole setting for every one.
    rows = [line for line in outputs[-1].splitlines() if line.endswith("| queued |")]
    changed = sorted(line.split(" | ")[2] for line in rows)
    assert changed == sorted(["dataset=thumos14", *(f"dataset=thumos14, prepare.split_id={i}" for i in range(1, 10))])
