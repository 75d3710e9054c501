"""Content addresses: everything that determines an item, hashed into its cache key."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_key(fields: dict[str, Any]) -> str:
    """A stable 24-hex-digit key of a JSON-able dict (sorted keys, so the order of fields does not matter)."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def item_seed(seed: int, class_name: str, index: int) -> int:
    """A per-image seed that differs between classes and images but depends only on (seed, class, index)."""
    digest = hashlib.sha256(f"{seed}\x1f{class_name}\x1f{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
