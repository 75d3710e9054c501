"""The Zarr v3 feature stores: the one writer and the one reader.

Layout of a frame-feature store (`rgb.zarr`, `flow.zarr`):

    STORE/zarr.json                 root attrs: schema_version, kind, encoder, weights_sha256, sample_fps,
                                    dim, T, settings (+ flow for flow), settings_sha256
    STORE/videos/<key>/             one group per video; attrs video_id, duration, ..., complete (set last)
        features    (N, D) float32  one chunk per video
        timestamps  (N,)   float64  seconds, the decoded presentation times
    Every chunk of every array (priors too) ends in zarr's crc32c checksum; a chunk that is missing, short or
    fails its checksum is damage, never a fill value; so is a float beyond MAX_ABS_VALUE (timestamps:
    MAX_TIMESTAMP_S), which a checksum cannot catch when the value was written whole.
    STORE/expected_ids.json         the ids the last run was asked for (what `check` expects)
    STORE/failures[.shard-i-of-n].jsonl   one line per video that could not be extracted, with the reason

The priors store (`priors.zarr`) has one group per class under `classes/<key>` (attr `name`).
`<key>` is the id itself when it is a plain name, else a slug plus a hash (see `safe_key`).

One writer per store: a writer holds an OS lock (``fcntl.flock``) on `.<store name>.lock` beside the store
(beside, because a rebuild replaces the store folder), exclusive for an unsharded writer and shared for a shard,
which also holds `.<store name>.<shard>.lock` exclusively. So shards of one store run together, but two writers
of one shard, or an unsharded writer and anything else, do not. The OS drops the lock when the process ends,
however it ends: a killed run never leaves a stale lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import heapq
import json
import math
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grizal.prior_arrays import PRIOR_ARRAYS
from pipeline.common import UserError, atomic_write_json, atomic_write_text, disk_full

if TYPE_CHECKING:  # zarr (and torch, for resampling) load on first use: the CLIs' --help stays fast
    import zarr
    import zarr.storage

SCHEMA_VERSION = 2  # 2: every chunk carries a crc32c checksum
FRAME_KINDS = ("rgb", "flow")
PRIORS_KIND = "priors"
VIDEOS = "videos"
CLASSES = "classes"
EXPECTED_FILE = "expected_ids.json"
READ_CONCURRENCY = 64
READ_THREADS = 4
# Frame-feature arrays are written as one uncompressed little-endian chunk each followed by its 4-byte crc32c
# (zarr's crc32c codec), which the reader may read and verify directly (Zarr v3 default chunk keys:
# features/c/0/0, timestamps/c/0).
CHUNK_LAYOUT = "one uncompressed little-endian chunk per array, crc32c appended"
CRC_BYTES = 4
# A value a checksum cannot catch (written whole, e.g. by a buggy importer or by hand) is still damage when it is
# absurd. Frame features and prior embeddings are O(1)-O(100) (CLIP-like outputs, pooled CNN features); 1e4 leaves
# 100x headroom and keeps sums of squares over a whole store far inside float32 (feature statistics). Timestamps
# are seconds: 1e6 s is 11.6 days, longer than any video.
MAX_ABS_VALUE = 1e4
MAX_TIMESTAMP_S = 1e6
_PLAIN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
# Names a plain id must not take: zarr's metadata (v3 and v2), chunk folders, the store's own files, and names
# Windows reserves or mangles. Compared case-folded, since a file system may fold case.
_RESERVED_KEYS = {"zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata", "c", "expected_ids.json",
                  "videos", "classes", "con", "prn", "aux", "nul",
                  *(f"{port}{i}" for port in ("com", "lpt") for i in range(10))}
_RESERVED_PATTERN = re.compile(r"(?i)(failures.*\.jsonl|.*\.lock|.*[.]|(con|prn|aux|nul|com\d|lpt\d)\..*)")

# Foreign files at the root (the manifests) are fine; zarr only warns about them when listing the root.
warnings.filterwarnings("ignore", message="Object at .* is not recognized as a component of a Zarr hierarchy")


def safe_key(identifier: str) -> str:
    """A group name for an id: the id itself when plain, else '<slug>~<hash>' ('~' never appears in a plain id).

    Plain: letters, digits, '_', '.', '-', starting with a letter or digit, at most 128 characters, and not a
    name the store or zarr uses for itself (`zarr.json`, `c`, `failures*.jsonl`, ...). So no key is a metadata
    name, starts with '.', holds a '/' or '\\', or is longer than 73 characters unless plain; none can leave the
    store's folder or land on its files. Today's plain ids keep their keys, so existing stores stay valid."""
    if _PLAIN_KEY.fullmatch(identifier) and not _is_reserved(identifier):
        return identifier
    slug = re.sub(r"[^A-Za-z0-9_.\-]+", "_", identifier).strip("._-")[:60] or "id"
    return f"{slug}~{hashlib.sha256(identifier.encode()).hexdigest()[:12]}"


def _is_reserved(key: str) -> bool:
    return key.casefold() in _RESERVED_KEYS or _RESERVED_PATTERN.fullmatch(key) is not None


GROUP_META = {"zarr_format": 3, "node_type": "group", "attributes": {}}


def _child_damage(store: Path, child: str) -> str | None:
    """Why the store's `videos`/`classes` group metadata is unreadable, or None."""
    try:
        meta = json.loads((store / child / "zarr.json").read_bytes())
    except FileNotFoundError:
        return f"damaged: {child}/zarr.json is missing"
    except (OSError, ValueError) as err:
        return f"damaged: {child}/zarr.json is unreadable ({type(err).__name__})"
    return None if isinstance(meta, dict) and meta.get("node_type") == "group" else f"damaged: {child}/zarr.json"


def _repaired_child(store: Path, child: str) -> str:
    """A writer rewrites a damaged `videos`/`classes` group metadata (it holds no attributes) and keeps the
    groups under it, which are checked one by one."""
    if _child_damage(store, child):
        atomic_write_json(store / child / "zarr.json", GROUP_META)
    return child


def _remove_if_unreadable(group_dir: Path) -> None:
    """A group whose zarr.json is broken (a damaged store) is deleted before it is written again."""
    meta = group_dir / "zarr.json"
    if not group_dir.is_dir():
        return
    try:
        json.loads(meta.read_bytes())
    except (OSError, ValueError):
        shutil.rmtree(group_dir)


def _check_key_owner(parent: zarr.Group, key: str, attr: str, identifier: str) -> None:
    """On a case-insensitive file system 'Clip' and 'clip' are one folder: never overwrite another id's group."""
    try:
        owner = parent[key].attrs.get(attr)
    except Exception:  # noqa: BLE001 - an unreadable leftover of a killed run is replaced
        return
    if owner is not None and owner != identifier:
        raise ValueError(f"'{identifier}': its store key '{key}' is taken by '{owner}' (names differing only in case "
                         "share a folder on a case-insensitive file system); rename one")


def settings_sha256(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def balance_shards(costs: Mapping[str, float | None], count: int) -> list[list[str]]:
    """Ids split into `count` shards of about equal total cost: longest-processing-time first, each video (by
    decreasing cost, then id) to the shard with the least work so far (ties: the lowest shard). Deterministic, so
    every task computes the same split on its own. An unknown (None or non-positive) cost counts as the median of
    the known ones, or 1 when none is known."""
    known = sorted(c for c in costs.values() if c is not None and c > 0)
    default = known[len(known) // 2] if known else 1.0
    order = sorted(((c if c is not None and c > 0 else default), v) for v, c in costs.items())
    shards: list[list[str]] = [[] for _ in range(count)]
    loads = [(0.0, i) for i in range(count)]  # a heap of (work so far, shard)
    for cost, video_id in sorted(order, key=lambda item: (-item[0], item[1])):
        load, index = heapq.heappop(loads)
        shards[index].append(video_id)
        heapq.heappush(loads, (load + cost, index))
    return [sorted(ids) for ids in shards]


@dataclass(frozen=True)
class Shard:
    """One of n shares of the work, balanced by each video's decode cost (`costs`: id -> duration x frame rate,
    None when unknown): n processes with i = 0..n-1 never touch the same video."""

    index: int = 0
    count: int = 1
    costs: Mapping[str, float | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str | None, environ: Mapping[str, str] | None = None) -> Shard:
        """'i/n', or 'auto': this process's share from its launcher's environment (see `from_launcher`)."""
        if not text:
            return cls()
        if text.strip() == "auto":
            return cls.from_launcher(os.environ if environ is None else environ)
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise UserError("--shard", f"expected i/n with 0 <= i < n, or auto, got '{text}'")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_launcher(cls, environ: Mapping[str, str]) -> Shard:
        """A Slurm array task (SLURM_ARRAY_TASK_ID/_COUNT/_MIN/_STEP) or a torchrun process (RANK/WORLD_SIZE);
        torchrun inside each array task splits that task's share again (index = task * WORLD_SIZE + RANK)."""
        slurm = _slurm_array_share(environ)
        torchrun = _launcher_ints(environ, "RANK", "WORLD_SIZE", "torchrun")
        if slurm is None and torchrun is None:
            raise UserError("--shard auto", "no launcher found: set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT "
                                            "(sbatch --array) or RANK and WORLD_SIZE (torchrun), or give --shard i/n")
        task, tasks = slurm or (0, 1)
        rank, world = torchrun or (0, 1)
        return cls(task * world + rank, tasks * world)

    def weighted(self, costs: Mapping[str, float | None]) -> Shard:
        return Shard(self.index, self.count, costs)

    def select(self, video_ids: Iterable[str]) -> list[str]:
        """This shard's ids among `video_ids`, balanced by decode cost over all shards (`balance_shards`)."""
        ids = sorted(video_ids)
        if self.count == 1:
            return ids
        return balance_shards({v: self.costs.get(v) for v in ids}, self.count)[self.index]

    @property
    def name(self) -> str:
        return "" if self.count == 1 else f"shard-{self.index}-of-{self.count}"


class StoreBusy(UserError):
    """Another process is writing the store (or this shard of it)."""


class WriterLock:
    """The store's writer lock (see the module doc). `wait`: block until the other writer is done, instead
    of raising `StoreBusy` at once."""

    def __init__(self, store: str | os.PathLike, shard: Shard = Shard(), *, wait: bool = False):
        store = Path(store)
        store.parent.mkdir(parents=True, exist_ok=True)
        self.files: list[Any] = []
        try:
            if shard.name:
                self._take(store, store.parent / f".{store.name}.lock", shared=True, wait=wait)
                self._take(store, store.parent / f".{store.name}.{shard.name}.lock", shared=False, wait=wait)
            else:
                self._take(store, store.parent / f".{store.name}.lock", shared=False, wait=wait)
        except BaseException:
            self.release()
            raise

    def _take(self, store: Path, lock_path: Path, shared: bool, wait: bool) -> None:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): one writer per store is up to the user
            return
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        self.files.append(handle)
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle.fileno(), mode)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            holder = handle.read().strip()
            who = f"another run ({holder})" if holder and not shared else "another run"
            raise StoreBusy(store, f"{who} is writing this store{'' if shared else ' or a shard of it'}; "
                                   "wait for it to finish, then run again (shards of one store may run "
                                   "together: --shard i/n)") from None
        if not shared:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()

    def release(self) -> None:
        for handle in reversed(self.files):
            handle.close()  # closing the file drops its lock
        self.files = []


def _launcher_ints(environ: Mapping[str, str], index_name: str, count_name: str, launcher: str
                   ) -> tuple[int, int] | None:
    if index_name not in environ and count_name not in environ:
        return None
    try:
        index, count = int(environ[index_name]), int(environ[count_name])
    except (KeyError, ValueError):
        raise UserError("--shard auto", f"{launcher}: {index_name}={environ.get(index_name)!r} and "
                                        f"{count_name}={environ.get(count_name)!r} must both be integers") from None
    if not 0 <= index < count:
        raise UserError("--shard auto", f"{launcher}: expected 0 <= {index_name} < {count_name}, "
                                        f"got {index} and {count}")
    return index, count


def _slurm_array_share(environ: Mapping[str, str]) -> tuple[int, int] | None:
    """(task index from 0, task count) of a Slurm array task; arrays may start above 0 or step (--array=1-8:2)."""
    if "SLURM_ARRAY_TASK_ID" not in environ and "SLURM_ARRAY_TASK_COUNT" not in environ:
        return None
    try:
        task_id, count = int(environ["SLURM_ARRAY_TASK_ID"]), int(environ["SLURM_ARRAY_TASK_COUNT"])
        first, step = int(environ.get("SLURM_ARRAY_TASK_MIN", 0)), int(environ.get("SLURM_ARRAY_TASK_STEP", 1))
    except (KeyError, ValueError):
        raise UserError("--shard auto", "Slurm array: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (and "
                                        "SLURM_ARRAY_TASK_MIN, _STEP when set) must all be integers") from None
    index, off_step = divmod(task_id - first, max(1, step))
    if off_step or not 0 <= index < count:
        raise UserError("--shard auto", f"Slurm array task {task_id} is not one of {count} tasks from {first} "
                                        f"in steps of {step}; use a plain range (--array=0-{count - 1})")
    return index, count


def _failures_path(store: Path, shard: Shard) -> Path:
    return store / (f"failures.{shard.name}.jsonl" if shard.name else "failures.jsonl")


def read_failures(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """All failure records of a store (every shard's manifest), by video id."""
    records: dict[str, dict[str, Any]] = {}
    for manifest in sorted(Path(path).glob("failures*.jsonl")):
        for line in manifest.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["id"]] = record
    return records


class FailureLog:
    """This run's failures manifest: rewritten atomically on every record, so a killed run leaves a valid file."""

    def __init__(self, store: Path, shard: Shard):
        self.path = _failures_path(store, shard)
        self.records: list[dict[str, Any]] = []
        atomic_write_text(self.path, "")

    def add(self, video_id: str, source: str | None, reason: str) -> None:
        self.records.append({"id": video_id, "path": source, "reason": reason})
        atomic_write_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records))


def _open_root(path: Path, mode: str = "r") -> zarr.Group:
    if not (path / "zarr.json").is_file():
        raise UserError(path, "not a feature store (no zarr.json); run the extract stage or `import` first")
    import zarr.storage

    try:
        return zarr.open_group(zarr.storage.LocalStore(path, read_only=mode == "r"), mode=mode, zarr_format=3)
    except Exception as err:  # noqa: BLE001 - zarr raises several kinds for unreadable metadata
        raise UserError(path, f"unreadable Zarr store ({err})") from None


def _check_root_attrs(path: Path, attrs: dict[str, Any], kinds: Sequence[str]) -> None:
    version = attrs.get("schema_version")
    if attrs.get("kind") not in kinds:
        raise UserError(path, f"not a grizal {'/'.join(kinds)} store (kind: {attrs.get('kind')})")
    if version != SCHEMA_VERSION:
        raise UserError(path, f"store schema version {version}, this grizal reads {SCHEMA_VERSION}; re-extract it")


def settings_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key.path: old -> new`` for every setting that differs, nested dicts compared key by key."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new))
                for d in settings_differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def _create_root_atomically(path: Path, attrs: dict[str, Any], child: str) -> None:
    """Build the empty store beside `path` and rename it into place: concurrent shards race safely."""
    import zarr.storage

    tmp = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:8]}")
    root = zarr.open_group(zarr.storage.LocalStore(tmp), mode="w", zarr_format=3, attributes=attrs)
    root.create_group(child)
    try:
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process created it first
        if not (path / "zarr.json").is_file():
            raise


def _is_precision(difference: str) -> bool:
    """Whether a `settings_differences` line is about precision only ('clip.precision: bf16 -> fp32')."""
    return difference.split(":", 1)[0].rsplit(".", 1)[-1] in ("precision", "autocast")


def _remove_store(path: Path) -> None:
    doomed = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex[:8]}")
    os.rename(path, doomed)
    shutil.rmtree(doomed)


def prepare_store(path: str | os.PathLike, attrs: dict[str, Any], child: str, *, rebuild: bool,
                  shard: Shard = Shard()) -> zarr.Group:
    """Open the store at `path` for writing, creating it, or replacing it when its settings differ.

    `attrs` must hold `kind`, `settings` and `settings_sha256`; other attrs (e.g. T) are refreshed in place.
    A store made with other settings is replaced only when `rebuild` is true and the run is not sharded.
    """
    path = Path(path)
    if path.exists() and not (path / "zarr.json").is_file():
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        else:
            raise UserError(path, "exists and is not a grizal store; choose another output path")
    if (path / "zarr.json").is_file():
        root = _open_root(path, "r+")
        old = dict(root.attrs)
        if old.get("kind") != attrs["kind"]:
            raise UserError(path, f"is a '{old.get('kind')}' store, not '{attrs['kind']}'; choose another path")
        if old.get("settings_sha256") != attrs["settings_sha256"] or old.get("schema_version") != SCHEMA_VERSION:
            differ = settings_differences(old.get("settings", {}), attrs["settings"])
            changes = "; ".join(differ[:4]) or "schema version"
            if "imported" in old.get("settings", {}) and "imported" not in attrs["settings"]:
                raise UserError(path, f"holds imported features ({old.get('encoder')}); extraction would replace "
                                      "them: run `dvc commit -f extract_" + str(attrs["kind"]) + "` so dvc repro keeps "
                                      "them, or delete the store to extract it")
            if attrs.get("precision_auto") and differ and all(_is_precision(d) for d in differ):
                raise UserError(path, f"holds features made in another precision ({changes}): 'auto' resolves "
                                      "otherwise on this machine; set extract.clip.precision (and extract.flow."
                                      "autocast) to the store's values to add to it, or delete the store to "
                                      "extract it again here")
            if shard.count > 1:
                raise UserError(path, f"was made with other settings ({changes}); delete it before a sharded run")
            if not rebuild:
                raise UserError(path, f"was made with other settings ({changes}); pass --rebuild to replace it")
            print(f"{path}: settings changed ({changes}); rebuilding")
            _remove_store(path)
        else:
            if any(old.get(k) != v for k, v in attrs.items()):
                root.attrs.update(attrs)
            return root
    path.parent.mkdir(parents=True, exist_ok=True)
    _create_root_atomically(path, {"schema_version": SCHEMA_VERSION, **attrs}, child)
    return _open_root(path, "r+")


def _group_attrs(parent: zarr.Group) -> dict[str, dict[str, Any]]:
    out = {}
    for key, group in parent.groups():
        try:
            out[key] = dict(group.attrs)
        except Exception:  # noqa: BLE001 - an unreadable group is an incomplete one
            out[key] = {}
    return out


def value_problem(values: np.ndarray, bound: float = MAX_ABS_VALUE) -> str | None:
    """Why a float array's values are not plausible (non-finite, or beyond +-bound), or None."""
    if values.dtype.kind != "f" or values.size == 0:
        return None
    largest = max(float(values.max()), -float(values.min()))  # NaN propagates; no |x| copy of the array
    if math.isnan(largest) or math.isinf(largest):
        return "non-finite values"
    if largest > bound:
        return f"a value of magnitude {largest:.3g}, beyond the bound {bound:g}"
    return None


@contextlib.contextmanager
def _full_disk_named(path: Path):
    """A full disk met inside zarr (whose OSError names no file) is reported as the group being written."""
    try:
        yield
    except Exception as err:
        full = disk_full(err)
        if full is None or full.filename:
            raise
        raise OSError(full.errno, full.strerror, str(path)) from err


def _check_array(name: str, values: np.ndarray, shape: tuple[int, ...], bound: float = MAX_ABS_VALUE) -> None:
    if values.shape != shape:
        raise ValueError(f"{name} has shape {values.shape}, expected {shape}")
    if problem := value_problem(values, bound):
        raise ValueError(f"{name} has {problem}")


def _checksummed() -> list[Any]:
    """The compressors of every array: zarr's own crc32c codec as the last bytes-to-bytes codec."""
    from zarr.codecs import Crc32cCodec

    return [Crc32cCodec()]


# Write every chunk even when it equals the fill value, so that a missing chunk file is always damage.
ALL_CHUNKS = {"write_empty_chunks": True}


def _verified_chunk(path: Path, size: int, label: str) -> np.ndarray:
    """A chunk file's data bytes (a writable uint8 array, read once) after checking its length and crc32c; else
    raises VideoUnreadable."""
    import google_crc32c

    try:
        with open(path, "rb") as f:
            on_disk = os.fstat(f.fileno()).st_size
            if on_disk != size + CRC_BYTES:
                raise VideoUnreadable(f"damaged: chunk {label} has {on_disk} bytes, expected {size + CRC_BYTES}")
            raw = np.empty(size + CRC_BYTES, dtype=np.uint8)
            got = f.readinto(memoryview(raw))
    except FileNotFoundError:
        raise VideoUnreadable(f"damaged: chunk {label} is missing") from None
    except OSError as err:
        raise VideoUnreadable(f"damaged: chunk {label} unreadable ({err.strerror})") from None
    if got != size + CRC_BYTES:
        raise VideoUnreadable(f"damaged: chunk {label} has {got} bytes, expected {size + CRC_BYTES}")
    data = raw[:-CRC_BYTES]
    if google_crc32c.value(data).to_bytes(4, "little") != raw[-CRC_BYTES:].tobytes():
        raise VideoUnreadable(f"damaged: chunk {label} fails its crc32c checksum (its bytes changed)")
    return data


def missing_chunks(array_dir: Path) -> str | None:
    """Why an array's chunk files are not all there (their count against what its shape implies), or None."""
    try:
        meta = json.loads((array_dir / "zarr.json").read_bytes())
        shape, chunks = meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]
        expected = math.prod(-(-int(s) // max(1, int(c))) for s, c in zip(shape, chunks, strict=True))
    except FileNotFoundError:
        return f"{array_dir.name}: array metadata missing"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{array_dir.name}: unreadable array metadata ({type(err).__name__})"
    chunk_root = array_dir / "c"
    present = 1 if chunk_root.is_file() else sum(len(files) for _, _, files in os.walk(chunk_root))
    if present < expected:
        return f"{array_dir.name}: {expected - present} of {expected} chunk(s) missing"
    return None


class FeatureStoreWriter:
    """Writes one video at a time; a video's group is marked complete only after its arrays are written."""

    def __init__(self, path: str | os.PathLike, attrs: dict[str, Any], *, rebuild: bool = True,
                 shard: Shard = Shard(), wait: bool = False):
        self.path = Path(path)
        attrs = {**attrs, "chunk_layout": CHUNK_LAYOUT}
        self.lock = WriterLock(self.path, shard, wait=wait)  # before anything is read, rebuilt or truncated
        try:
            self.root = prepare_store(self.path, attrs, VIDEOS, rebuild=rebuild, shard=shard)
        except BaseException:
            self.lock.release()
            raise
        self.videos = self.root[_repaired_child(self.path, VIDEOS)]
        self.dim = int(attrs["dim"])
        self.shard = shard
        self.failures = FailureLog(self.path, shard)

    def close(self) -> None:
        """Let the next writer in (the lock also goes when this object is collected or the process ends)."""
        self.lock.release()

    def __enter__(self) -> FeatureStoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete_ids(self) -> set[str]:
        """Complete videos whose chunks pass their checks (a damaged one is written again)."""
        store = FeatureStore(self.path)
        ids = store.complete_ids()
        return {v for v, result in zip(ids, store.load_many(ids), strict=True) if not isinstance(result, str)}


    def current_ids(self, fingerprints: dict[str, str | None]) -> set[str]:
        """Complete videos whose stored source fingerprint still matches the file (an edited or replaced
        video is extracted again)."""
        store = FeatureStore(self.path)
        stored = store.video_attrs()
        matching = sorted(v for v, attrs in stored.items()
                          if v in fingerprints and attrs.get("source_fingerprint") == fingerprints[v])
        # A complete video counts as done only when its chunks pass their checks: damage is repaired by rerunning.
        return {v for v, result in zip(matching, store.load_many(matching), strict=True)
                if not isinstance(result, str)}

    def forget(self, video_id: str) -> None:
        """Drop a video's group (its source failed to extract again): stale features never stay complete."""
        group = self.path / VIDEOS / safe_key(video_id)
        if group.is_dir():
            shutil.rmtree(group)

    def set_expected(self, video_ids: Iterable[str]) -> None:
        atomic_write_json(self.path / EXPECTED_FILE, sorted(video_ids))

    def write_video(self, video_id: str, features: np.ndarray, timestamps: np.ndarray, info: dict[str, Any]
                    ) -> None:
        features = np.ascontiguousarray(features, dtype=np.float32)
        timestamps = np.ascontiguousarray(timestamps, dtype=np.float64)
        n = features.shape[0]
        if n < 1:
            raise ValueError(f"{video_id}: no features to write")
        _check_array("features", features, (n, self.dim))
        _check_array("timestamps", timestamps, (n,), MAX_TIMESTAMP_S)
        if n > 1 and np.any(np.diff(timestamps) <= 0):
            raise ValueError(f"{video_id}: timestamps are not strictly increasing")
        key = safe_key(video_id)
        with _full_disk_named(self.path / VIDEOS / key):
            self._write_group(key, video_id, features, timestamps, {"n": n, **info})

    def _write_group(self, key: str, video_id: str, features: np.ndarray, timestamps: np.ndarray,
                     info: dict[str, Any]) -> None:
        _remove_if_unreadable(self.path / VIDEOS / key)
        if key in self.videos:
            _check_key_owner(self.videos, key, "video_id", video_id)
            del self.videos[key]  # a leftover of a killed run
        group = self.videos.create_group(key, attributes={"video_id": video_id, "complete": False, **info})
        # NaN fill: a chunk that was never written reads as NaN, which every reader rejects, never as zeros.
        group.create_array("features", data=features, chunks=features.shape, compressors=_checksummed(),
                           fill_value=np.nan, config=ALL_CHUNKS)
        group.create_array("timestamps", data=timestamps, chunks=timestamps.shape, compressors=_checksummed(),
                           fill_value=np.nan, config=ALL_CHUNKS)
        group.attrs.update({"complete": True})


async def _read_groups(store: zarr.storage.LocalStore, paths: Sequence[str], arrays: Sequence[str]):
    from zarr.api.asynchronous import open_group as open_group_async

    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def one(path: str):
        """(attrs, arrays) of one group, or why it is damaged (a str)."""
        gaps = [m for m in (missing_chunks(Path(store.root) / path / a) for a in arrays) if m]
        if gaps:
            return f"damaged: {gaps[0]}"
        async with limit:
            try:
                group = await open_group_async(store=store, path=path, mode="r", zarr_format=3)
                handles = await asyncio.gather(*[group.getitem(name) for name in arrays])
                values = await asyncio.gather(*[h.getitem(slice(None)) for h in handles])
            except Exception as err:  # noqa: BLE001 - zarr raises several kinds for damaged metadata or chunks
                return f"damaged: {_short(err)}"
            return dict(group.attrs), values

    return await asyncio.gather(*[one(p) for p in paths])


class VideoUnreadable(Exception):
    """Why one video cannot be read: 'missing', 'incomplete' or 'damaged: ...'."""


def _validate(features: np.ndarray, timestamps: np.ndarray, dim: int) -> None:
    n = features.shape[0] if features.ndim == 2 else -1
    if n < 1 or features.shape[1] != dim or timestamps.shape != (n,):
        raise VideoUnreadable(f"damaged: shapes {features.shape} and {timestamps.shape} for dim {dim}")
    for name, values, bound in (("features", features, MAX_ABS_VALUE), ("timestamps", timestamps, MAX_TIMESTAMP_S)):
        if problem := value_problem(values, bound):
            raise VideoUnreadable(f"damaged: {name} has {problem}")
    if np.any(np.diff(timestamps) <= 0):
        raise VideoUnreadable("damaged: timestamps not strictly increasing")


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:160] + "...") if len(text) > 160 else text or type(err).__name__


class FeatureStore:
    """Read access to a frame-feature store; `read_videos` reads many videos at once."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._root = _open_root(self.path)
        self.attrs: dict[str, Any] = dict(self._root.attrs)
        _check_root_attrs(self.path, self.attrs, FRAME_KINDS)
        # Written by this module as one uncompressed chunk per array: read the chunk files directly (about
        # 5x faster than through zarr); the file sizes are checked against the declared shape.
        self._direct = self.attrs.get("chunk_layout") == CHUNK_LAYOUT

    @property
    def kind(self) -> str:
        return self.attrs["kind"]

    @property
    def dim(self) -> int:
        return int(self.attrs["dim"])

    def _group_meta(self, key: str) -> dict[str, Any]:
        try:
            return json.loads((self.path / VIDEOS / key / "zarr.json").read_bytes()).get("attributes", {})
        except FileNotFoundError:
            raise VideoUnreadable("missing") from None
        except (OSError, ValueError) as err:
            raise VideoUnreadable(f"damaged: unreadable group metadata ({err})") from None

    def video_attrs(self) -> dict[str, dict[str, Any]]:
        """Attributes of every complete video, by id (duration, fps, source, n, ...)."""
        out = {}
        folder = self.path / VIDEOS
        for entry in sorted(os.scandir(folder), key=lambda e: e.name) if folder.is_dir() else []:
            try:
                attrs = self._group_meta(entry.name)
            except VideoUnreadable:
                continue
            if attrs.get("complete") and "video_id" in attrs:
                out[attrs["video_id"]] = attrs
        return out

    def complete_ids(self) -> list[str]:
        return sorted(self.video_attrs())

    def expected_ids(self) -> list[str] | None:
        path = self.path / EXPECTED_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def failures(self) -> dict[str, dict[str, Any]]:
        return read_failures(self.path)

    def load(self, video_id: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """(attrs, features, timestamps) of one complete, intact video; else raises VideoUnreadable."""
        key = safe_key(video_id)
        attrs = self._group_meta(key)
        if not attrs.get("complete"):
            raise VideoUnreadable("incomplete")
        group = self.path / VIDEOS / key
        if self._direct:
            n = attrs.get("n")
            if not isinstance(n, int) or n < 1:
                raise VideoUnreadable(f"damaged: attribute n is {n!r}")
            features = _verified_chunk(group / "features" / "c" / "0" / "0", n * self.dim * 4,
                                       "features/c/0/0").view("<f4").reshape(n, self.dim)
            timestamps = _verified_chunk(group / "timestamps" / "c" / "0", n * 8, "timestamps/c/0").view("<f8")
        else:
            import zarr.storage

            gaps = [m for m in (missing_chunks(group / a) for a in ("features", "timestamps")) if m]
            if gaps:
                raise VideoUnreadable(f"damaged: {gaps[0]}")
            try:
                zgroup = zarr.open_group(zarr.storage.LocalStore(group, read_only=True), mode="r", zarr_format=3)
                features, timestamps = zgroup["features"][:], zgroup["timestamps"][:]
            except Exception as err:  # noqa: BLE001 - zarr raises several kinds for a damaged chunk
                raise VideoUnreadable(f"damaged: {_short(err)}") from None
        _validate(features, timestamps, self.dim)
        return attrs, features, timestamps

    def _load_or_reason(self, video_id: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray] | str:
        try:
            return self.load(video_id)
        except VideoUnreadable as err:
            return str(err)

    def load_many(self, ids: Sequence[str]) -> list[tuple[dict[str, Any], np.ndarray, np.ndarray] | str]:
        """Each video's (attrs, features, timestamps), or the reason it cannot be read; in `ids` order."""
        with ThreadPoolExecutor(READ_THREADS) as pool:  # threads help on network file systems
            return list(pool.map(self._load_or_reason, ids))

    def _read(self, ids: Sequence[str]) -> list[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
        results = self.load_many(ids)
        problems: dict[str, list[str]] = {}
        for video_id, result in zip(ids, results, strict=True):
            if isinstance(result, str):
                problems.setdefault(result.split(":")[0], []).append(video_id)
        if "missing" in problems:
            ids_ = problems["missing"]
            raise UserError(self.path, f"no features for {len(ids_)} video(s), e.g. {ids_[:3]}; run the extract stage")
        if "incomplete" in problems:
            ids_ = problems["incomplete"]
            raise UserError(self.path, f"{len(ids_)} video(s) not completely extracted, e.g. {ids_[:3]}; "
                                       "rerun the extract stage")
        if problems:
            first = problems["damaged"][0]
            reason = results[list(ids).index(first)]
            raise UserError(self.path, f"{len(problems['damaged'])} video(s) damaged, e.g. {first}: {reason}; "
                                       "rerun the extract stage")
        return results  # type: ignore[return-value]

    def read_videos(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{id: (features (N, D) float32, timestamps (N,) float64)} for complete videos; others are an error."""
        ids = list(ids)
        return {i: (f, t) for i, (_, f, t) in zip(ids, self._read(ids), strict=True)}

    def read_resampled(self, ids: Sequence[str], T: int, durations: dict[str, float] | None = None) -> np.ndarray:
        """(len(ids), T, D) float32: each video linearly interpolated at T snippet centres over its duration
        (from `durations`, e.g. the dataset index, else the duration stored at extraction)."""
        from grizal.temporal import resample

        ids = list(ids)
        out = np.empty((len(ids), T, self.dim), dtype=np.float32)
        for row, (video_id, (attrs, features, timestamps)) in enumerate(zip(ids, self._read(ids), strict=True)):
            duration = (durations or {}).get(video_id) or attrs.get("duration")
            if not duration:
                raise UserError(self.path, f"video '{video_id}' has no duration; pass durations from the index")
            out[row] = resample(features, timestamps, float(duration), T)
        return out


def open_store(path: str | os.PathLike) -> FeatureStore:
    return FeatureStore(path)


@dataclass
class CheckReport:
    path: Path
    kind: str
    expected: list[str]
    complete: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)

    @property
    def failure_fraction(self) -> float:
        return len(self.failed) / max(1, len(self.expected))

    def ok(self, max_failure_fraction: float) -> bool:
        return not self.missing and not self.invalid and self.failure_fraction <= max_failure_fraction

    def summary(self) -> str:
        return (f"{self.path}: {self.kind}, {len(self.complete)}/{len(self.expected)} complete, "
                f"{len(self.failed)} failed ({self.failure_fraction:.1%}), {len(self.missing)} missing, "
                f"{len(self.invalid)} invalid")


def check_feature_store(path: str | os.PathLike, expected: Sequence[str] | None = None, *,
                        verified: Iterable[str] = ()) -> CheckReport:
    """Is every expected video either complete and well-formed, or listed in a failures manifest? Videos in
    `verified` (read and checked earlier in the same run) are not read again."""
    store = open_store(path)
    expected = sorted(expected if expected is not None else (store.expected_ids() or store.complete_ids()))
    complete = set(store.complete_ids())
    failures = store.failures()
    report = CheckReport(store.path, store.kind, expected, sorted(complete & set(expected)))
    if problem := _child_damage(store.path, VIDEOS):
        report.invalid[VIDEOS] = problem
    report.failed = {i: failures[i]["reason"] for i in expected if i in failures and i not in complete}
    report.missing = []
    for video_id in (i for i in expected if i not in complete and i not in failures):
        try:
            store._group_meta(safe_key(video_id))
            report.missing.append(video_id)
        except VideoUnreadable as err:  # a group whose metadata is broken is damage, not merely missing
            if str(err).startswith("damaged"):
                report.invalid[video_id] = str(err)
            else:
                report.missing.append(video_id)
    verified = set(verified)
    unverified = [v for v in report.complete if v not in verified]
    for video_id, result in zip(unverified, store.load_many(unverified), strict=True):
        if isinstance(result, str):
            report.invalid[video_id] = result
    return report


# --- priors ---------------------------------------------------------------------------------------------


class PriorsStoreWriter:
    """One group per class; a class is rewritten only when its sentences, images or the encoder changed."""

    def __init__(self, path: str | os.PathLike, attrs: dict[str, Any], *, rebuild: bool = True,
                 wait: bool = True):
        self.path = Path(path)
        self.lock = WriterLock(self.path, wait=wait)  # a priors run is short: the next writer waits for it
        self.root = prepare_store(self.path, attrs, CLASSES, rebuild=rebuild)
        self.classes = self.root[_repaired_child(self.path, CLASSES)]

    def is_current(self, name: str, source_sha256: str) -> bool:
        """Complete, made from the same source, and intact (a damaged class is written again)."""
        key = safe_key(name)
        _remove_if_unreadable(self.path / CLASSES / key)
        if key not in self.classes:
            return False
        attrs = dict(self.classes[key].attrs)
        if not (attrs.get("complete") and attrs.get("source_sha256") == source_sha256):
            return False
        return _class_problem(self.path, name) is None

    def write_class(self, name: str, arrays: dict[str, np.ndarray], source_sha256: str) -> None:
        key = safe_key(name)
        with _full_disk_named(self.path / CLASSES / key):
            _remove_if_unreadable(self.path / CLASSES / key)
            if key in self.classes:
                _check_key_owner(self.classes, key, "name", name)
                del self.classes[key]
            group = self.classes.create_group(key, attributes={"name": name, "source_sha256": source_sha256,
                                                               "complete": False})
            for array_name in PRIOR_ARRAYS:
                values = np.ascontiguousarray(arrays[array_name])
                if problem := value_problem(values):
                    raise ValueError(f"class '{name}': {array_name} has {problem}")
                group.create_array(array_name, data=values, chunks=values.shape, compressors=_checksummed(),
                                   config=ALL_CHUNKS)
            group.attrs.update({"complete": True})

    def set_classes(self, names: Sequence[str]) -> None:
        self.root.attrs.update({"classes": sorted(names)})

    def remove_other_classes(self, names: Sequence[str]) -> list[str]:
        """Delete every class group that is not one of `names` (a class dropped from priors.json), so the store
        never keeps or grows stale groups; returns what was removed (names, or keys of unreadable groups)."""
        keep = {safe_key(n) for n in names}
        folder = self.path / CLASSES
        removed = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name) if folder.is_dir() else []:
            if entry.is_dir() and entry.name not in keep:
                try:
                    name = json.loads(Path(entry.path, "zarr.json").read_bytes())["attributes"]["name"]
                except (OSError, ValueError, KeyError, TypeError):
                    name = entry.name
                shutil.rmtree(entry.path)
                removed.append(str(name))
        return removed


def read_store_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The root attributes of any grizal store (rgb, flow or priors): encoder, weights checksum, settings."""
    path = Path(path)
    attrs = dict(_open_root(path).attrs)
    _check_root_attrs(path, attrs, (*FRAME_KINDS, PRIORS_KIND))
    return attrs


def read_priors(path: str | os.PathLike, classes: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """{class name: {array name: array}} for `classes`, read concurrently; arrays as stored (unpadded):
    joint (k, S, E), joint_mask (k, S), token_type (k, S), name_tokens (Sn, E), name_mask (Sn,),
    name_embedding (E,), text_embedding (k, E), image_embedding (k, E). Missing or incomplete classes are an
    error, and so is a store without an array of PRIOR_ARRAYS (one made before it was added)."""
    path = Path(path)
    root = _open_root(path)
    attrs = dict(root.attrs)
    _check_root_attrs(path, attrs, (PRIORS_KIND,))
    classes = list(classes)
    paths = [f"{CLASSES}/{safe_key(c)}" for c in classes]
    missing = [c for c, p in zip(classes, paths, strict=True) if not (path / p / "zarr.json").is_file()]
    if missing:
        raise UserError(path, f"no priors for {len(missing)} class(es), e.g. {missing[:3]}; rerun the priors stage")
    _check_not_older(path, paths)
    listed = attrs.get("classes")
    dropped = [c for c in classes if isinstance(listed, list) and c not in listed]
    if dropped:
        raise UserError(path, f"{len(dropped)} class(es) are no longer in priors.json, e.g. '{dropped[0]}' (its "
                              "old group is stale); rerun the priors stage with priors for them")
    results = _read_classes(path, paths)
    damaged = {c: r for c, r in zip(classes, results, strict=True) if isinstance(r, str)}
    if damaged:
        first = next(iter(damaged))
        raise UserError(path, f"priors of {len(damaged)} class(es) damaged, e.g. '{first}': {damaged[first]}; "
                              "rerun the priors stage")
    incomplete = [c for c, (a, _) in zip(classes, results, strict=True) if not a.get("complete")]
    if incomplete:
        raise UserError(path, f"priors of {incomplete[:3]} are incomplete; rerun the priors stage")
    out = {c: dict(zip(PRIOR_ARRAYS, values, strict=True)) for c, (_, values) in zip(classes, results, strict=True)}
    implausible = {c: p for c, arrays in out.items() for p in map(value_problem, arrays.values()) if p}
    if implausible:
        first = next(iter(implausible))
        raise UserError(path, f"priors of {len(implausible)} class(es) damaged, e.g. '{first}': "
                              f"{implausible[first]}; rerun the priors stage")
    k = attrs.get("k")
    short = [c for c, arrays in out.items() if isinstance(k, int) and arrays["joint"].shape[0] != k]
    if short:
        raise UserError(path, f"class '{short[0]}' has {out[short[0]]['joint'].shape[0]} prior pair(s), the store's "
                              f"k is {k}; generate its priors again, then rerun the priors stage")
    return out


def _check_not_older(path: Path, paths: Sequence[str]) -> None:
    """An array of PRIOR_ARRAYS that no class group of `paths` holds means the store predates it (one class
    lacking one is damage, named when it is read): one line naming the store and the fix."""
    lacking = [a for a in PRIOR_ARRAYS if paths and not any((path / p / a / "zarr.json").is_file() for p in paths)]
    if lacking:
        raise UserError(path, f"holds no {', '.join(lacking)} (made by an older grizal); rerun the priors stage: "
                              "dvc repro extract_priors (or python -m pipeline.extract priors)")


def _read_classes(path: Path, paths: Sequence[str]) -> list[Any]:
    import zarr.storage
    from zarr.core.sync import sync

    return sync(_read_groups(zarr.storage.LocalStore(path, read_only=True), paths, PRIOR_ARRAYS))


def _class_problem(path: Path, name: str) -> str | None:
    """Why one class of a priors store cannot be read (damage or non-finite values), or None."""
    result = _read_classes(path, [f"{CLASSES}/{safe_key(name)}"])[0]
    if isinstance(result, str):
        return result
    return next(filter(None, map(value_problem, result[1])), None)


def check_priors_store(path: str | os.PathLike, classes: Sequence[str] | None = None) -> CheckReport:
    """Is every expected class complete and intact (group metadata, every chunk present, checksums, finite)?"""
    path = Path(path)
    attrs = dict(_open_root(path).attrs)
    _check_root_attrs(path, attrs, (PRIORS_KIND,))
    expected = sorted(classes if classes is not None else attrs.get("classes", []))
    present = [f"{CLASSES}/{safe_key(c)}" for c in expected if (path / CLASSES / safe_key(c) / "zarr.json").is_file()]
    _check_not_older(path, present)
    report = CheckReport(path, PRIORS_KIND, expected, [])
    if problem := _child_damage(path, CLASSES):
        report.invalid[CLASSES] = problem
    for name in expected:
        try:
            meta = json.loads((path / CLASSES / safe_key(name) / "zarr.json").read_bytes())
        except FileNotFoundError:
            report.missing.append(name)
            continue
        except (OSError, ValueError) as err:
            report.invalid[name] = f"damaged: unreadable group metadata ({type(err).__name__})"
            continue
        if not (isinstance(meta, dict) and isinstance(meta.get("attributes"), dict)
                and meta["attributes"].get("complete")):
            report.missing.append(name)
            continue
        problem = _class_problem(path, name)
        if problem:
            report.invalid[name] = problem
        else:
            report.complete.append(name)
    return report
