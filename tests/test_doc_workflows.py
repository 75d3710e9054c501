"""The docs' workflow blocks: each parses, and each is run by some test (a workflow without a test is a bug)."""

import re
from pathlib import Path

from support.doc_workflows import _join, all_workflows

TESTS = Path(__file__).resolve().parent


def test_join_drops_comments_and_joins_continuations():
    body = ["# a comment", "", "python -m x \\", "   --flag 'a # b'  # why", "echo ok"]
    assert _join(body) == ["python -m x --flag 'a # b'", "echo ok"]


def test_every_workflow_in_the_docs_is_run_by_a_test():
    used: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        used |= set(re.findall(r"""commands\(\s*["']([\w.-]+)["']""", path.read_text(encoding="utf-8")))
    missing = sorted(set(all_workflows()) - used)
    assert not missing, f"workflows in the docs that no test runs: {missing}"
