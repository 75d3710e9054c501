"""Write the JSON Schema of params.yaml (from the params models in ``pipeline.params_schema``) for editors:

    python -m pipeline.json_schema > params.schema.json
"""

from __future__ import annotations

import json
import sys

from pipeline.params_schema import json_schema


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print("usage: python -m pipeline.json_schema > params.schema.json", file=sys.stderr)
        return 2
    print(json.dumps(json_schema(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
