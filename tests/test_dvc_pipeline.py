"""The README's quick start under DVC on a small demo world: `make setup`, `grizal check` and `make repro`, as the
README prints them, run every stage; a second repro runs nothing, and a changed param reruns only its stage and
what depends on it. (An experiment on the same finished project: tests/test_experiments_workflow.py.)"""

import pytest
from support.conf_defaults import edit_defaults
from support.doc_workflows import commands
from support.project_copy import copy_prepared

pytestmark = pytest.mark.slow


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def project(quickstart_project, tmp_path_factory):
    source, env, done = quickstart_project
    return copy_prepared(source, tmp_path_factory.mktemp("project")), env, done


def test_quickstart_then_nothing_then_only_what_a_param_touches(project):
    from support.custom_world import run_workflow

    dest, env, done = project
    assert list(done) == commands("quickstart")  # the README's lines, each run to success without a traceback
    setup, check, repro = done.values()
    assert "Nothing to be done for 'setup'" in setup.stdout  # this test run's environment stands for .venv
    assert "MISSING" not in check.stdout and check.stdout.rstrip().endswith("ready: `dvc repro` can start")
    assert "made by the demo_world stage" in check.stdout  # checked before any stage ran
    assert _ran(repro.stdout) == {"demo_world", "pretrain", "prepare", "generate", "extract_rgb", "extract_flow",
                                  "extract_priors", "train", "evaluate", "results"}
    assert (dest / "metrics/evaluate.json").is_file() and (dest / "cache/results/results.md").is_file()

    def repro_ran() -> set[str]:
        return _ran(run_workflow(["dvc repro"], dest, env)[0].stdout)

    (status,) = run_workflow(["dvc status"], dest, env)
    assert "up to date" in status.stdout.lower()
    assert repro_ran() == set()

    edit_defaults(dest, lambda params: params["evaluate"].update(n_plots=1))  # conf/ and params.yaml
    assert repro_ran() == {"evaluate"}

    edit_defaults(dest, lambda params: params["extract"]["flow"].update(wheel_max_magnitude=6.0))
    assert repro_ran() == {"extract_flow", "train", "evaluate", "results"}
