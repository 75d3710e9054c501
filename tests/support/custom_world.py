"""A tiny custom data set in a project copy, laid out as the docs' "Your own videos" asks (my_videos/,
my_annotations.json, my_unseen_classes.txt, the docs' own `prepare` section), for the workflow tests."""

import json
import re
import subprocess
from pathlib import Path

import yaml

from pipeline.data import demo_vocab
from pipeline.data.demo import DemoConfig, render_world
from support.project_copy import copy_prepared, copy_project, install_venv, project_env

ROOT = Path(__file__).resolve().parents[2]


def readme_prepare_section() -> dict:
    """The `prepare` section of the docs' "Your own videos" YAML block (docs/datasets/custom.md)."""
    text = (ROOT / "docs" / "datasets" / "custom.md").read_text(encoding="utf-8")
    block = re.search(r"# Your own videos:.*?\n(prepare:\n.*?)```", text, re.S).group(1)
    return yaml.safe_load(block)["prepare"]


def custom_template(dest: Path) -> tuple[Path, dict[str, str], dict]:
    """(project folder, environment, the annotation database): a git repo with the project's files, 32 short
    rendered videos (one per class and subset), every one annotated, tiny model/training settings, and the stages
    up to the feature stores run by `dvc repro` (what every workflow on this data set makes the same way)."""
    copy_project(dest)
    (dest / "dvc.lock").unlink(missing_ok=True)
    world = render_world(dest / "rendered", DemoConfig(videos_per_class_train=1, videos_per_class_test=1,
                                                       min_duration=8.0, max_duration=10.0), workers=2)
    database = world["database"]
    (dest / "my_annotations.json").write_text(json.dumps({"database": database}))
    (dest / "rendered" / "videos").rename(dest / "my_videos")
    (dest / "my_unseen_classes.txt").write_text("\n".join(demo_vocab.unseen_classes(0)) + "\n")

    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["prepare"] = readme_prepare_section()
    params["extract"]["clip"].update(model="grizal-tiny", pretrained=None)  # a custom data set: no demo CLIP
    params["extract"]["frames"]["sample_fps"] = 2.0
    params["extract"]["T"] = 16
    params["generate"]["image_size"] = 64
    params["model"].update(width=32, heads=2, vle_layers=1, ofe_layers=1)
    params["train"].update(epochs=1, batch_size=64)
    params["results"].update(splits=[0], variants=["GRIZAL"], closed_set=False, seeds=[0])
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    install_venv(dest)
    env = project_env()
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)
    (repro,) = run_workflow(["dvc repro extract_rgb extract_flow extract_priors"], dest, env)
    ran = {line.split("'")[1] for line in repro.stdout.splitlines() if line.startswith("Running stage '")}
    assert ran == {"pretrain", "prepare", "generate", "extract_rgb", "extract_flow", "extract_priors"}, repro.stdout
    return dest, env, database


def custom_project(template: tuple[Path, dict[str, str], dict], dest: Path) -> tuple[Path, dict[str, str], dict]:
    """A copy of the template project in DEST (its DVC cache and lock included, DVC's temporary files not)."""
    source, env, database = template
    copy_prepared(source, dest)
    return dest, dict(env), json.loads(json.dumps(database))


def run_workflow(lines: list[str], dest: Path, env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Each command line in the project folder; every one must succeed without a traceback."""
    done = []
    for command in lines:
        result = subprocess.run(command, shell=True, executable="/bin/bash", cwd=dest, env=env,
                                capture_output=True, text=True, timeout=900)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        assert "Traceback" not in output, f"{command}\n{output[-3000:]}"
        done.append(result)
    return done
