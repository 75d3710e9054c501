"""What the benchmarks that run the pipeline need of the project: a copy of its files as git sees them, and a
params edit by dotted key (the tests use both too)."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DELETE = object()  # as a value of set_dotted: remove the key


def set_dotted(params: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


def copy_project(dest: Path) -> Path:
    """The project's files as git sees them (tracked and new, not ignored), copied into ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest
