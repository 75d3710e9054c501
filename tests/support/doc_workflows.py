"""The shell commands the docs print, read from the docs themselves so a test runs exactly what a user copies.

A workflow is a fenced ```bash block whose line above is `<!-- workflow: NAME -->`. `commands(NAME)` returns its
command lines (comments and blank lines dropped, backslash continuations joined, trailing `# ...` comments cut).
Every workflow name must be run by some test (tests/test_doc_workflows.py checks that).
"""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md",)

_TAG = re.compile(r"<!--\s*workflow:\s*([\w.-]+)\s*-->")


def _doc_files() -> list[Path]:
    files = [p for p in DOCS if p.is_file()]
    docs = ROOT / "docs"
    if docs.is_dir():
        files += sorted(docs.rglob("*.md"))
    return files


def _strip_comment(line: str) -> str:
    """Drop a trailing shell comment that is outside quotes."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        list(lexer)
    except ValueError:
        return line.rstrip()
    in_single = in_double = False
    for i, ch in enumerate(line):
        if ch == "'" and not in_double:
            in_single = not in_single
        elif ch == '"' and not in_single:
            in_double = not in_double
        elif ch == "#" and not in_single and not in_double and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def all_workflows() -> dict[str, tuple[Path, list[str]]]:
    """Every tagged block in the docs: name -> (file, command lines)."""
    found: dict[str, tuple[Path, list[str]]] = {}
    for path in _doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = _TAG.search(line)
            if not match:
                continue
            name = match.group(1)
            if name in found:
                raise ValueError(f"{path}: workflow '{name}' is tagged twice")
            start = i + 1
            if start >= len(lines) or not lines[start].startswith("```bash"):
                raise ValueError(f"{path}:{start + 1}: the workflow tag '{name}' is not followed by a ```bash block")
            body: list[str] = []
            for raw in lines[start + 1:]:
                if raw.startswith("```"):
                    break
                body.append(raw)
            found[name] = (path, _join(body))
    return found


def _join(body: list[str]) -> list[str]:
    commands: list[str] = []
    pending = ""
    for raw in body:
        line = _strip_comment(raw) if not raw.lstrip().startswith("#") else ""
        if not line and not pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append((pending + line.strip()).strip())
        pending = ""
    if pending.strip():
        commands.append(pending.strip())
    return [c for c in commands if c]


def commands(name: str) -> list[str]:
    """The command lines of the docs' workflow NAME."""
    workflows = all_workflows()
    if name not in workflows:
        raise KeyError(f"no workflow '{name}' in the docs (known: {', '.join(sorted(workflows))})")
    return workflows[name][1]
