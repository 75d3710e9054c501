"""manifest.jsonl: an append-only log with one JSON line per generated (or failed) item."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.priors.faults import redact


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Manifest:
    """Thread-safe appends, flushed line by line so a killed run keeps every line it wrote."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handle = None

    def append(self, record: dict[str, Any]) -> None:
        line = redact(json.dumps({"time": now_iso(), **record}, ensure_ascii=False, default=str))
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("a", encoding="utf-8")
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """All complete lines (a line cut off by a kill is skipped)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
