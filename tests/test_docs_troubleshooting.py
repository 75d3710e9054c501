"""docs/troubleshooting.md quotes the error lines users meet: each quoted text must still occur in the code that
prints it, so a reworded message fails here instead of leaving the page describing a line nobody sees."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "troubleshooting.md"


def quoted_messages() -> list[str]:
    """The code spans of the first column of every table row."""
    spans = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split(" | ")[0]
            spans += re.findall(r"`([^`]+)`", first_cell)
    return spans


def fragments(span: str) -> list[str]:
    return [part.strip() for part in span.split("...") if len(part.strip()) >= 4]


def code_text() -> str:
    files = sorted((ROOT / "pipeline").rglob("*.py")) + sorted((ROOT / "grizal").rglob("*.py"))
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


def test_fragments_split_on_the_ellipsis():
    assert fragments("expected at most ... (the prior pairs in") == ["expected at most", "(the prior pairs in"]


def test_every_quoted_message_is_printed_by_the_code():
    spans = quoted_messages()
    assert len(spans) >= 30, f"the page's tables were not found ({len(spans)} quoted messages)"
    source = code_text()
    missing = [part for span in spans for part in fragments(span) if part not in source]
    assert not missing, f"quoted in docs/troubleshooting.md but printed nowhere in pipeline/ or grizal/: {missing}"
