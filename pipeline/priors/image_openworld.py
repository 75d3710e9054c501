"""The openworld image backend: real images from a local folder per class (the paper's cheaper variant).

Layout: <openworld_dir>/<class>/*.{jpg,jpeg,png,webp,bmp}. The class folder may be named exactly like the
class, or like it modulo case, spaces, CamelCase and punctuation ("CleanAndJerk", "clean_and_jerk" and
"Clean and jerk" all match). k images are chosen by a seeded shuffle of the sorted file names.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from pathlib import Path

from pipeline.common import UserError
from pipeline.priors.backends import ImageRequest, ImageResult
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import FatalBackendError, MalformedOutput, PermanentError, Usage
from pipeline.priors.names import humanize
from pipeline.priors.validate import decode_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def _loose(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", humanize(name).lower())


class OpenWorldImageBackend:
    name = "openworld"
    remote = False
    uses_prompt = False  # the pictures exist already; the sentence does not change them

    def __init__(self, cfg: GenerateConfig):
        self.cfg = cfg
        self.model = cfg.resolved_image_model
        self.root = Path(cfg.openworld_dir) if cfg.openworld_dir else None
        if self.root is None or not self.root.is_dir():
            raise UserError(self.root, "openworld folder not found (expected one sub-folder of images per class)")
        self._digests: dict[tuple[Path, int, int], str] = {}
        self._sources: dict[str, list[Path]] = {}
        self._lock = threading.Lock()

    def _folders(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise FatalBackendError(str(self.root), "openworld folder disappeared during the run")
        return {p.name: p for p in self.root.iterdir() if p.is_dir()}

    def folder_for(self, class_name: str) -> Path | None:
        folders = self._folders()
        if class_name in folders:
            return folders[class_name]
        wanted = _loose(class_name)
        return next((path for name, path in sorted(folders.items()) if _loose(name) == wanted), None)

    def sources(self, class_name: str) -> list[Path]:
        """The class's pictures in their seeded order (listed once per run)."""
        with self._lock:
            if class_name in self._sources:
                return self._sources[class_name]
        folder = self.folder_for(class_name)
        files = [] if folder is None else sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        random.Random(f"{self.cfg.seed}\x1f{class_name}").shuffle(files)
        with self._lock:
            self._sources[class_name] = files
        return files

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key not in self._digests:
                self._digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            return self._digests[key]

    def _source(self, request: ImageRequest) -> Path | None:
        files = self.sources(request.class_name)
        return files[request.index] if request.index < len(files) else None

    def key_fields(self, request: ImageRequest) -> dict:
        source = self._source(request)
        if source is None:
            return {"source": None}
        return {"source": source.relative_to(self.root).as_posix(), "sha256": self._digest(source)}

    def generate(self, request: ImageRequest) -> ImageResult:
        source = self._source(request)
        if source is None:
            folder = self.folder_for(request.class_name)
            if folder is None:
                raise PermanentError(f"no folder for this class in {self.root}")
            count = len(self.sources(request.class_name))
            raise PermanentError(f"{folder} holds {count} images, {request.index + 1} needed")
        try:
            image = decode_image(source.read_bytes())
        except MalformedOutput as err:
            raise PermanentError(f"{source}: {err.detail}") from None
        return ImageResult(image, Usage(), None)

    def estimate(self) -> Usage:
        return Usage()
