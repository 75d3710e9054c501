"""Edit the demo defaults of a project copy where DVC composes them from (conf/config.yaml), then write params.yaml
from them, so `dvc repro` and `dvc exp run` (which composes params.yaml again from conf/) read the same params."""

from collections.abc import Callable
from pathlib import Path

import yaml

from pipeline.config import composed_text


def edit_defaults(dest: Path, edit: Callable[[dict], None]) -> None:
    path = dest / "conf" / "config.yaml"
    conf = yaml.safe_load(path.read_text())
    edit(conf)
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    (dest / "params.yaml").write_text(composed_text([], dest / "conf"))
