"""The content-addressed store of generated items under the output folder, and the priors.json it feeds."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from pipeline.common import atomic_write_bytes, atomic_write_json
from pipeline.priors.names import safe_key
from pipeline.priors.validate import png_bytes

TEXT_SCHEMA = 1


class PriorCache:
    """texts/<class key>/<content key>.json and images/<class key>/<content key>.png, each written atomically,
    so an item on disk is always complete and a rerun after a crash or Ctrl-C only makes what is missing."""

    def __init__(self, out: str | Path):
        self.out = Path(out)

    def text_path(self, class_name: str, key: str) -> Path:
        return self.out / "texts" / safe_key(class_name) / f"{key}.json"

    def image_path(self, class_name: str, key: str) -> Path:
        return self.out / "images" / safe_key(class_name) / f"{key}.png"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.out).as_posix()

    def load_texts(self, class_name: str, key: str, k: int) -> list[str] | None:
        """The cached sentences, or None when the item is missing or unreadable (then it is made again)."""
        path = self.text_path(class_name, key)
        try:
            item = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        texts = item.get("texts") if isinstance(item, dict) else None
        if not isinstance(texts, list) or len(texts) != k or not all(isinstance(t, str) for t in texts):
            return None
        return texts

    def save_texts(self, class_name: str, key: str, texts: list[str], meta: dict) -> Path:
        path = self.text_path(class_name, key)
        atomic_write_json(path, {"schema": TEXT_SCHEMA, "class": class_name, "key": key, "texts": texts, **meta})
        return path

    def has_image(self, class_name: str, key: str) -> bool:
        path = self.image_path(class_name, key)
        return path.is_file() and path.stat().st_size > 0

    def save_image(self, class_name: str, key: str, image: Image.Image) -> Path:
        path = self.image_path(class_name, key)
        atomic_write_bytes(path, png_bytes(image))
        return path

    def write_priors(self, k: int, classes: dict[str, dict[str, list[str]]]) -> Path:
        """priors.json for exactly the complete classes of this run (the file extraction reads)."""
        path = self.out / "priors.json"
        atomic_write_json(path, {"k": k, "classes": classes})
        return path
