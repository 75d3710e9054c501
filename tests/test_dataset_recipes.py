"""Each data set page's recipe, as printed (docs/datasets/*.md, workflows recipe-*): compose the paper setting with
the user's paths, then `grizal check`, in a copy of the project where those paths do not exist. The check must
say, one line each and before any work, everything the run lacks, and exit 2; nothing may end in a traceback."""

import subprocess

import pytest
import yaml
from support.doc_workflows import commands
from support.project_copy import copy_project, install_venv, project_env

RECIPES = {  # data set -> (its page's workflow lines, what the check must name as missing)
    "thumos14": (commands("recipe-thumos14"),
                 ["MISSING videos: folder /my/thumos14/videos not found", "MISSING weights:",
                  "MISSING API key: OPENAI_API_KEY"]),
    "activitynet": (commands("recipe-activitynet"),
                    ["MISSING annotations: /my/anet/activity_net.v1-3.min.json: file not found", "MISSING weights:",
                     "MISSING API key: OPENAI_API_KEY"]),
    "charades": (commands("recipe-charades"),
                 ["MISSING annotations: /data/charades/annotations/", "MISSING weights:",
                  "MISSING priors: not priced"]),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dest = copy_project(tmp_path_factory.mktemp("recipes"))
    install_venv(dest)
    return dest


@pytest.mark.parametrize("dataset", sorted(RECIPES))
def test_a_data_set_recipe_composes_its_setting_and_the_check_names_what_is_missing(project, dataset):
    (compose, check), missing = RECIPES[dataset]
    env = project_env()
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(compose, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["prepare"]["dataset"] == dataset
    checked = subprocess.run(check, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 2, output
    assert "Traceback" not in output and "error:" not in output
    for line in missing:
        assert line in output, output
    assert output.rstrip().endswith("fix them before `dvc repro`")
