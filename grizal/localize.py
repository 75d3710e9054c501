"""The `grizal` console script: `grizal localize VIDEO --action "a dog being bathed"` (pipeline/localize.py).

`python -m grizal.localize VIDEO --action ...` runs the same command (a leading `localize` is accepted too).
`grizal --version` prints the package's version.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def package_version() -> str:
    """The installed package's version, else (running from a checkout that is not installed) pyproject's."""
    try:
        return importlib.metadata.version("grizal")
    except importlib.metadata.PackageNotFoundError:
        return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]


def main() -> None:
    """Entry point of the `grizal` console script (commands: localize)."""
    from pipeline.localize import app

    app(prog_name="grizal")


def module_main(argv: list[str] | None = None) -> None:
    from pipeline.localize import localize_app

    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        print(f"grizal {package_version()}")
        return
    if args[:1] == ["localize"]:
        args = args[1:]
    localize_app(args, prog_name="python -m grizal.localize")


if __name__ == "__main__":
    module_main()
