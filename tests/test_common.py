"""pipeline.common's atomic writes: whole files only, with the mode a plain open() would give."""

import os
import stat

import pytest

from pipeline.common import atomic_write_bytes, atomic_write_json, atomic_write_text


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the previous one afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask_like_open(tmp_path, umask, mask, mode):
    umask(mask)
    with open(tmp_path / "plain.txt", "w") as handle:
        handle.write("x")
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "b.md", "| a |\n")
    atomic_write_json(tmp_path / "sub" / "c.json", {"a": 1})
    for name in ("plain.txt", "a.bin", "b.md", "sub/c.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "index.json"
    atomic_write_json(target, {"old": True})
    atomic_write_json(target, {"new": True})
    assert target.read_text() == '{\n  "new": true\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "results.md"
    atomic_write_text(target, "old\n")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]
