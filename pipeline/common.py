"""Helpers every stage shares: params loading, user-facing errors and atomic writes."""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """A mistake in the user's input: printed as one line, never as a traceback."""

    def __init__(self, where: str | os.PathLike | None, problem: str):
        self.where = str(where) if where is not None else None
        self.problem = problem
        super().__init__(f"{self.where}: {problem}" if self.where else problem)

    def __reduce__(self):  # so an error raised in a worker process reaches the parent intact
        return type(self), (self.where, self.problem)


def exit_on_user_error(fn: F) -> F:
    """Wrap a CLI entry point: a UserError becomes `error: <file>: <problem>` and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except Exception as err:
            full = disk_full(err)
            if full is None:
                raise
            where = full.filename or "disk"
            print(f"error: {where}: no space left on the device; free some space and run again (finished work "
                  "is kept)", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]


def disk_full(err: BaseException) -> OSError | None:
    """The 'no space left' (or quota) OSError behind `err`, following its causes (libraries re-raise it)."""
    seen = 0
    current: BaseException | None = err
    while current is not None and seen < 20:
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Read a params file (params.yaml is composed from conf/: docs/config-groups.md)."""
    params = _read_params_file(Path(path))
    if "_base_" in params:  # an overlay of the configs/ folder that conf/ replaced
        raise UserError(path, "_base_ overlays are gone: compose a complete params file from conf/ instead, e.g. "
                              "python -m pipeline.config dataset=thumos14 --out mine.yaml (docs/config-groups.md)")
    return params


def _read_params_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(path, "params file not found")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UserError(path, f"not valid YAML ({str(err).splitlines()[0]})") from None
    except UnicodeDecodeError as err:
        raise UserError(path, f"not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    except RecursionError:
        raise UserError(path, "nested too deeply to be params") from None
    if not isinstance(params, dict):
        raise UserError(path, "expected a mapping of stage sections at the top level")
    try:
        size = expanded_size(params)
    except RecursionError:
        raise UserError(path, "nested too deeply to be params") from None
    except ValueError as err:
        raise UserError(path, str(err)) from None
    if size > MAX_PARAMS_VALUES:
        raise UserError(path, f"its aliases (*name) expand to more than {MAX_PARAMS_VALUES:,} values (a 'billion "
                              "laughs' document); write the values out or use fewer aliases")
    return params


# Params files are a few hundred values; YAML aliases can make a short file stand for billions of them.
MAX_PARAMS_VALUES = 1_000_000


def expanded_size(value: Any, memo: dict[int, int] | None = None, active: set[int] | None = None) -> int:
    """How many values `value` holds once every shared (aliased) node is counted each time it is used; counted
    once per distinct node, so a 'billion laughs' document is measured without being expanded. A node that
    contains itself (a recursive alias) raises ValueError."""
    if not isinstance(value, dict | list):
        return 1
    memo = {} if memo is None else memo
    active = set() if active is None else active
    key = id(value)
    if key in memo:
        return memo[key]
    if key in active:
        raise ValueError("a value contains itself (a recursive YAML alias)")
    active.add(key)
    children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = 1 + sum(expanded_size(child, memo, active) for child in children)
    active.discard(key)
    memo[key] = total
    return total


def section(params: dict[str, Any], name: str, path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    if name not in params or not isinstance(params[name], dict):
        raise UserError(path, f"missing section '{name}'")
    return params[name]


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(path, f"not valid JSON ({err})") from None
    except RecursionError:
        raise UserError(path, "not valid JSON here (nested too deeply)") from None
    except _DuplicateKey as err:
        raise UserError(path, f"duplicate key '{err.args[0]}' (e.g. a video id listed twice)") from None


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a failed write() names no file: name the one being written (disk full)
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_temporary_beside(path: Path) -> tuple[int, Path]:
    """Create a new hidden file next to `path`, open for writing. Unlike `tempfile.mkstemp` (always 0600), its
    mode is 0666 less the process umask, as a plain `open(path, "w")` would give (0644 under the usual umask)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_SECONDS = 0.5


def die_with_parent(parent_pid: int, use_prctl: bool = True) -> None:
    """A pool worker's initializer: the worker ends when its parent does, however the parent ends (kill -9
    included), so no orphan finishes runs into a folder that a rerun is writing. On Linux the kernel sends
    SIGKILL (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread watches the parent's pid."""
    if use_prctl and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before the request was made
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
