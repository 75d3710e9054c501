"""Params dicts for tests: set or delete a dotted key, and the results grid's params on the tiny world."""

from typing import Any

from benchmarks.workspace import DELETE, set_dotted

__all__ = ["DELETE", "grid_values", "set_dotted"]


def grid_values(tiny_world, **results) -> dict[str, Any]:
    """Every section the results grid reads, for open split 0 of the tiny world, one epoch per run."""
    root = tiny_world["root"]
    return {
        "prepare": {"dataset": "demo", "annotations": str(root / "annotations.json"), "protocol": "open",
                    "unseen_list": str(root / "unseen.txt")},
        "model": dict(tiny_world["model"]),
        "loss": {},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
        "localization": {},
        "evaluate": {"tious": [0.3, 0.5]},
        "results": {"splits": [0], "variants": ["GRIZAL", "w/o Fourier"], "closed_set": True, **results},
    }
