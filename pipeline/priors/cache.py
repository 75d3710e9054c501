"""The content-addressed store of generated items, and the output folder (priors.json and its items) it feeds."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.common import atomic_write_bytes, atomic_write_json
from pipeline.priors.faults import redact_value
from pipeline.priors.names import file_slug

if TYPE_CHECKING:
    from PIL import Image

TEXT_SCHEMA = 1
ITEM_FOLDERS = ("texts", "images")


def _decodes(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception:  # noqa: BLE001 - PIL raises many kinds for a damaged file
        return False
    return True


def source_digest(*module_names: str) -> str:
    """sha256 of the named (imported) modules' source: part of an offline backend's item keys, because its output
    is its code (an edited template or drawing makes new items instead of reusing the old ones)."""
    digest = hashlib.sha256()
    for name in module_names:
        digest.update(name.encode() + b"\0" + Path(sys.modules[name].__file__).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class PriorCache:
    """texts/<class key>/<content key>.json and images/<class key>/<content key>.png, each written atomically,
    so an item on disk is always complete and a rerun after a crash or Ctrl-C only makes what is missing.

    Items are made in ``store``. When the store is another folder than ``out`` (a shared item cache), ``publish``
    copies the items of a run into ``out``, so ``out`` holds exactly what its priors.json uses; items found
    only in ``out`` (e.g. restored by ``dvc pull``) are reused too. Without ``store``, ``out`` is the store.
    """

    def __init__(self, out: str | Path, store: str | Path | None = None):
        self.out = Path(out)
        self.store = Path(store) if store is not None else self.out

    @property
    def shared(self) -> bool:
        return os.path.abspath(self.store) != os.path.abspath(self.out)

    def text_path(self, class_name: str, key: str) -> Path:
        return self.store / self.text_item(class_name, key)

    def image_path(self, class_name: str, key: str) -> Path:
        return self.store / self.image_item(class_name, key)

    @staticmethod
    def text_item(class_name: str, key: str) -> str:
        return f"texts/{file_slug(class_name)}/{key}.json"

    @staticmethod
    def image_item(class_name: str, key: str) -> str:
        return f"images/{file_slug(class_name)}/{key}.png"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.store).as_posix()

    def find(self, item: str) -> Path | None:
        """The non-empty file of an item (a path relative to the store), in the store or else in ``out``; an
        image only when it decodes whole (a truncated PNG is made again, not reused on every run)."""
        for root in (self.store, self.out) if self.shared else (self.store,):
            path = root / item
            if path.is_file() and path.stat().st_size > 0 and (not item.endswith(".png") or _decodes(path)):
                return path
        return None

    def load_texts(self, class_name: str, key: str, k: int) -> list[str] | None:
        """The cached sentences, or None when the item is missing or unreadable (then it is made again)."""
        path = self.find(self.text_item(class_name, key))
        if path is None:
            return None
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
        atomic_write_json(path, {"schema": TEXT_SCHEMA, "class": class_name, "key": key,
                                 "texts": redact_value(texts), **redact_value(meta)})
        return path

    def has_image(self, class_name: str, key: str) -> bool:
        return self.find(self.image_item(class_name, key)) is not None

    def save_image(self, class_name: str, key: str, image: Image.Image) -> Path:
        from pipeline.priors.validate import png_bytes

        path = self.image_path(class_name, key)
        atomic_write_bytes(path, png_bytes(image))
        return path

    def write_priors(self, k: int, classes: dict[str, dict[str, list[str]]]) -> Path:
        """priors.json for exactly the complete classes of this run (the file extraction reads)."""
        path = self.out / "priors.json"
        classes = {name: {**entry, "texts": redact_value(entry.get("texts", []))} for name, entry in classes.items()}
        atomic_write_json(path, {"k": k, "classes": classes})
        return path

    def publish(self, items: Iterable[str]) -> None:
        """Make ``out`` hold exactly ``items`` (copied from the store): what is there already stays, anything
        else moves to the store (or goes, when the store has it), so nothing made is ever thrown away."""
        if not self.shared:
            return
        keep = set(items)
        for item in sorted(keep):
            target = self.out / item
            if not target.is_file():
                source = self.find(item)
                if source is not None:
                    atomic_write_bytes(target, source.read_bytes())
        for folder in ITEM_FOLDERS:
            root = self.out / folder
            if not root.is_dir():
                continue
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                item = path.relative_to(self.out).as_posix()
                if item in keep:
                    continue
                stored = self.store / item
                if not stored.is_file():
                    atomic_write_bytes(stored, path.read_bytes())
                path.unlink()
            for directory in sorted((d for d in root.rglob("*") if d.is_dir()), reverse=True):
                if not any(directory.iterdir()):
                    directory.rmdir()
