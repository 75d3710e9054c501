"""Where the class names of a run come from: a list, a file, a data set's zero-shot split or the index."""

from __future__ import annotations

from pathlib import Path

from pipeline.common import UserError, read_json
from pipeline.data.splits import published_split

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


def from_split(dataset: str, setting: str, split: int, subset: str = "all") -> list[str]:
    """Classes of a shipped zero-shot split: seen = the train list, unseen = the test list."""
    if subset not in SUBSETS:
        raise UserError("--subset", f"unknown subset '{subset}' (choose from {', '.join(SUBSETS)})")
    seen, unseen = published_split(dataset.lower(), setting, split)
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


def pick_classes(classes: str | None = None, classes_file: Path | None = None, dataset: str | None = None,
                 split_setting: str = "75_25", split: int | None = None, subset: str = "all",
                 index: Path | None = None, default_index: Path | None = None) -> list[str]:
    """The class names a command line names one way: a comma-separated list, a file, a data set's published
    split, or an index; without any, those of ``default_index`` (e.g. the index a params file names)."""
    given = [name for name, value in (("--classes", classes), ("--classes-file", classes_file),
                                      ("--dataset", dataset), ("--index", index)) if value is not None]
    if len(given) > 1:
        raise UserError(None, f"name the classes one way only, not {' and '.join(given)}")
    if dataset is None and split is not None:
        raise UserError("--split", "needs --dataset (thumos14 or activitynet)")
    if classes is not None:
        return from_list(classes)
    if classes_file is not None:
        return from_file(classes_file)
    if dataset is not None:
        return from_split(dataset, split_setting, split or 0, subset)
    if index is not None:
        return from_index(index)
    if default_index is not None:
        return from_index(default_index)
    raise UserError(None, "no classes: give --classes, --classes-file, --dataset or --index "
                          "(or --params params.yaml to take them from its index)")
