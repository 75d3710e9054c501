"""pipeline.common's atomic writes: whole files only, with the mode a plain open() would give."""

import os
import stat

import pytest

from pipeline.common import UserError, atomic_write_bytes, atomic_write_json, atomic_write_text


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


LAUGHS = "lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))


@pytest.mark.parametrize(("content", "problem"), [
    (LAUGHS.encode(), "expand to more than 1,000,000 values"),
    (b"train: &a [1, *a]\n", "not valid YAML|contains itself"),
    (b"train:\n  name: caf\xe9\n", "not UTF-8 text"),
    (b"train: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply|not valid YAML"),
])
def test_hostile_params_files_are_one_line_errors(tmp_path, content, problem):
    from pipeline.common import load_params

    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError, match=problem) as err:
        load_params(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_deeply_nested_json_is_one_line_error(tmp_path):
    from pipeline.common import read_json

    path = tmp_path / "annotations.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(UserError, match="nested too deeply"):
        read_json(path)


def test_show_never_reprs_a_huge_value_whole():
    import yaml

    from pipeline.params_schema import show

    laughs = yaml.safe_load(LAUGHS)  # shared nodes: 9**10 strings once expanded
    assert len(show(laughs)) <= 80 and show({"b": 1, "a": [1, 2]}) == "{'b': 1, 'a': [1, 2]}"


def test_disk_full_is_one_line_and_exit_2(capsys):
    import errno

    from pipeline.common import exit_on_user_error

    @exit_on_user_error
    def stage():
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "cache/features/rgb.zarr/videos/v1/c/0")
        except OSError as err:
            raise RuntimeError("a library wrapped it") from err

    with pytest.raises(SystemExit) as exit_:
        stage()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("error: cache/features/rgb.zarr/videos/v1/c/0: no space left on the device; "
                                       "free some space and run again (finished work is kept)\n")

    @exit_on_user_error
    def other():
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(OSError):
        other()
