"""The code deps of dvc.yaml: complete (every stage's deps cover the project code its command imports) and stable
(running the project's commands in a Python that writes bytecode leaves every dep's hash as it was)."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from support.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "grizal")
_MODULE_NAME = re.compile(r"^(?:pipeline|grizal)(?:\.\w+)*$")


def _stages(root: Path = ROOT) -> dict[str, dict]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def _stage_module(cmd: str) -> str:
    args = shlex.split(cmd)
    assert "-m" in args, f"stage command is not `python -m <module>`: {cmd}"
    return args[args.index("-m") + 1]


def _module_file(name: str, root: Path = ROOT) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _project_modules(root: Path = ROOT) -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = name.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def _direct_imports(name: str) -> frozenset[str]:
    """Project modules `name` may import: every import statement (function-level ones too, since stages import
    lazily) and every string naming a project module (importlib.import_module tables)."""
    path = _module_file(name)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, name, path.name == "__init__.py")
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
            found.add(node.value)
    with_parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, len(m.split(".")) + 1)}
    return frozenset(m for m in with_parents if m.split(".")[0] in PACKAGES and _module_file(m))


def _data_beside(path: Path) -> set[Path]:
    """Non-Python files a module reads via __file__: those in its folder and its non-package subfolders."""
    files = set()
    for item in path.parent.rglob("*"):
        folder = item.parent
        in_data_folder = all(not (p / "__init__.py").exists() for p in _folders_between(path.parent, folder))
        if item.is_file() and item.suffix not in (".py", ".pyc", ".pyo") and "__pycache__" not in item.parts \
                and in_data_folder:
            files.add(item)
    return files


def _folders_between(top: Path, folder: Path) -> list[Path]:
    """The folders below `top` down to `folder` (empty when folder is top)."""
    return [top.joinpath(*folder.relative_to(top).parts[:i]) for i in range(1, len(folder.relative_to(top).parts) + 1)]


def import_closure(module: str) -> set[Path]:
    """The project files running `python -m module` may load: modules it imports, transitively, plus the data
    files beside modules that locate them through __file__."""
    seen: set[str] = set()
    todo = [".".join(module.split(".")[:i]) for i in range(1, len(module.split(".")) + 1)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_direct_imports(name) - seen)
    files = {_module_file(name) for name in seen}
    for path in list(files):
        if "__file__" in path.read_text(encoding="utf-8"):
            files |= _data_beside(path)
    return files


def _covered(relative: str, deps: list[str]) -> bool:
    return any(relative == dep.rstrip("/") or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_every_stage_lists_the_project_code_its_command_imports():
    missing = []
    for stage, spec in _stages().items():
        deps = [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", [])]
        for path in sorted(import_closure(_stage_module(spec["cmd"]))):
            relative = path.relative_to(ROOT).as_posix()
            if not _covered(relative, deps):
                missing.append(f"{stage}: {relative}")
    assert not missing, "dvc.yaml deps miss code the stage imports:\n" + "\n".join(missing)


def test_every_code_dep_exists_and_is_code_the_stage_imports():
    stale = []
    for stage, spec in _stages().items():
        closure = [p.relative_to(ROOT).as_posix() for p in import_closure(_stage_module(spec["cmd"]))]
        for dep in spec.get("deps", []):
            dep = dep if isinstance(dep, str) else next(iter(dep))
            if dep.split("/")[0] in PACKAGES and not any(_covered(path, [dep]) for path in closure):
                stale.append(f"{stage}: {dep}" + ("" if (ROOT / dep).exists() else " (does not exist)"))
    assert not stale, "dvc.yaml code deps the stage never imports (needless reruns):\n" + "\n".join(stale)


def test_the_closure_follows_lazy_imports_and_module_tables():
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure("pipeline.extract")}
    assert {"pipeline/__init__.py", "pipeline/extract.py", "pipeline/common.py"} <= closure
    # grizal.encoders resolves its names through an importlib table of module-name strings
    assert {"grizal/encoders/clip.py", "grizal/encoders/grizal-tiny.json"} <= closure
    assert "pipeline/demo_world.py" not in closure


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project's files (tracked and new, as git sees them), free of any bytecode."""
    dest = tmp_path_factory.mktemp("project")
    copy_project(dest)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run(["git", "init", "-q"], cwd=dest, env=env, check=True)
    assert not list(dest.rglob("__pycache__"))
    return dest, env


def _dep_hashes(root: Path) -> dict[str, str]:
    from dvc.repo import Repo

    hashes = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            for dep in stage.deps:
                hashes[f"{stage.name}: {dep.def_path}"] = str(dep.get_hash()) if dep.exists else "missing"
    return hashes


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{shlex.join(args)}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


@pytest.mark.slow
def test_running_the_commands_with_bytecode_on_changes_no_dep_hash(project):
    dest, env = project
    before = _dep_hashes(dest)
    assert any(value.endswith(".dir") for value in before.values())  # the code folders are hashed as folders

    for module in sorted({_stage_module(spec["cmd"]) for spec in _stages(dest).values()}):
        _run([sys.executable, "-m", module, "--help"], dest, env)
    modules = _project_modules(dest)
    _run([sys.executable, "-c", f"import importlib\nfor m in {modules!r}: importlib.import_module(m)"], dest, env)

    packages = {p.parent for p in dest.rglob("__init__.py") if p.parts[len(dest.parts)] in PACKAGES}
    with_bytecode = {p.parent.parent for p in dest.rglob("__pycache__/*.pyc")}
    assert packages <= with_bytecode, f"no bytecode written in {sorted(map(str, packages - with_bytecode))}"

    after = _dep_hashes(dest)
    changed = sorted(key for key in before if after.get(key) != before[key])
    assert not changed, "dep hashes changed by running commands:\n" + "\n".join(changed)
