"""The `grizal` console script: `grizal localize VIDEO --action "a dog being bathed"` (pipeline/localize.py).

`python -m grizal.localize VIDEO --action ...` runs the same command (a leading `localize` is accepted too).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the `grizal` console script (commands: localize)."""
    from pipeline.localize import app

    app(prog_name="grizal")


def module_main(argv: list[str] | None = None) -> None:
    from pipeline.localize import localize_app

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["localize"]:
        args = args[1:]
    localize_app(args, prog_name="python -m grizal.localize")


if __name__ == "__main__":
    module_main()
