"""The `grizal` console script: `grizal localize VIDEO --action "a dog being bathed"` (pipeline/apps/localize.py),
`grizal check` (pipeline/apps/preflight.py: what the configured run lacks and will cost, before any work).

`python -m pipeline.apps.cli localize VIDEO --action ...` runs the same command from a checkout that is not
installed. `grizal --version` prints the package's version.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def package_version() -> str:
    """The installed package's version, else (running from a checkout that is not installed) pyproject's."""
    try:
        return importlib.metadata.version("grizal")
    except importlib.metadata.PackageNotFoundError:
        return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]


def main() -> None:
    """Entry point of the `grizal` console script (commands: localize, check)."""
    from pipeline.apps.localize import app
    from pipeline.apps.preflight import check_command

    app.command("check")(check_command)

    app(prog_name="grizal")


if __name__ == "__main__":
    main()
