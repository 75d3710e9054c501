"""The arrows of ARCHITECTURE.md, checked on the source (every import statement, function-level ones too):
stages -> wings -> grizal; never stage -> stage, never wing -> stage, never grizal -> pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str | None = None) -> set[str]:
    """Every module an import statement in ``path`` (module ``name``) names, relative imports resolved."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


# The doors: the command-line modules at the top of pipeline/ (`python -m pipeline.<stage>`). The other top-level
# modules (common.py, ...) are helpers every room may use.
STAGES = {module_name(p) for p in (ROOT / "pipeline").glob("*.py")
          if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8")}


def is_stage(name: str) -> bool:
    return any(name == stage or name.startswith(stage + ".") for stage in STAGES)


def test_the_stages_are_the_command_lines_at_the_top():
    assert {"pipeline.prepare", "pipeline.train", "pipeline.evaluate", "pipeline.score"} <= STAGES
    assert "pipeline.common" not in STAGES
    wing_doors = [p.relative_to(ROOT).as_posix() for p in (ROOT / "pipeline").glob("*/*.py")
                  if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8")]
    assert wing_doors == ["pipeline/apps/cli.py"]  # the `grizal` console script, run as a module from a checkout


@pytest.mark.parametrize("path", modules("grizal"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_grizal_imports_no_pipeline(path):
    assert not {m for m in imported(path) if m.split(".")[0] == "pipeline"}


@pytest.mark.parametrize("path", [p for p in modules("pipeline") if is_stage(module_name(p))],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_stage_imports_another_stage(path):
    own = module_name(path)
    assert not {m for m in imported(path) if is_stage(m) and m != own}


@pytest.mark.parametrize("path", [p for p in modules("pipeline") if not is_stage(module_name(p))],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_wing_imports_a_stage(path):
    assert not {m for m in imported(path) if is_stage(m)}


@pytest.mark.parametrize("path", [p for pkg in ("pipeline", "grizal", "benchmarks") for p in modules(pkg)],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_outside_the_tests_imports_them(path):
    assert not {m for m in imported(path) if m.split(".")[0] in ("tests", "support", "conftest")}


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from pipeline.train import main\n    from ..score import app\n")
    found = imported(source, "pipeline.modelling.x")
    assert {"pipeline.train", "pipeline.score"} <= found and all(is_stage(m) for m in found)


def test_no_test_fake_ships_in_the_packages():
    shipped = [p.relative_to(ROOT).as_posix() for pkg in ("pipeline", "grizal") for p in modules(pkg)
               if p.stem.startswith("fake")]
    assert shipped == []
