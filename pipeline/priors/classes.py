"""Where the class names of a run come from: a list, a file, a data set's zero-shot split or the index."""

from __future__ import annotations

from pathlib import Path

from pipeline.common import UserError, read_json

SPLITS_DIR = Path(__file__).resolve().parent.parent / "datasets" / "data" / "zero_shot_splits"
SPLIT_SETTINGS = {"75_25": "train_75_test_25", "50_50": "train_50_test_50"}
DATASET_DIRS = {"thumos14": "THUMOS14", "activitynet": "ActivityNet"}
SUBSETS = ("seen", "unseen", "all")


def dedupe(names: list[str]) -> list[str]:
    """Keep the first occurrence of each name, in order; strip surrounding white space."""
    seen: set[str] = set()
    out = []
    for name in names:
        name = name.strip()
        if name and name not in seen:
            seen.add(name)
            out.append(name)
    return out


def from_list(text: str) -> list[str]:
    names = dedupe(text.split(","))
    if not names:
        raise UserError("--classes", "no class names given (expected a comma-separated list)")
    return names


def from_file(path: str | Path) -> list[str]:
    """One class name a line; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "classes file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(path, "classes file is not UTF-8 text") from None
    names = dedupe([line for line in lines if not line.lstrip().startswith("#")])
    if not names:
        raise UserError(path, "classes file lists no class names")
    return names


def read_split_list(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(path, "split list not found")
    return dedupe(path.read_text(encoding="utf-8").splitlines())


def from_split(dataset: str, setting: str, split: int, subset: str = "all") -> list[str]:
    """Classes of a shipped zero-shot split: seen = the train list, unseen = the test list."""
    key = dataset.lower()
    if key not in DATASET_DIRS:
        raise UserError("--dataset", f"unknown data set '{dataset}' (choose from {', '.join(DATASET_DIRS)})")
    if setting not in SPLIT_SETTINGS:
        choices = ", ".join(SPLIT_SETTINGS)
        raise UserError("--split-setting", f"unknown split setting '{setting}' (choose from {choices})")
    if subset not in SUBSETS:
        raise UserError("--subset", f"unknown subset '{subset}' (choose from {', '.join(SUBSETS)})")
    base = SPLITS_DIR / SPLIT_SETTINGS[setting] / DATASET_DIRS[key]
    if not (base / "train" / f"split_{split}.list").is_file():
        available = sorted(int(p.stem.split("_")[1]) for p in (base / "train").glob("split_*.list"))
        raise UserError("--split", f"{dataset} {setting} has no split {split} (available: {available})")
    seen = read_split_list(base / "train" / f"split_{split}.list")
    unseen = read_split_list(base / "test" / f"split_{split}.list")
    return {"seen": seen, "unseen": unseen, "all": dedupe(seen + unseen)}[subset]


def from_index(path: str | Path) -> list[str]:
    index = read_json(path)
    classes = index.get("classes") if isinstance(index, dict) else None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise UserError(path, "expected a 'classes' list of names (the canonical index written by prepare)")
    names = dedupe(classes)
    if not names:
        raise UserError(path, "the index lists no classes")
    return names
