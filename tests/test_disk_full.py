"""A really full disk (a tiny tmpfs, not a raised ENOSPC) under a real stage write: one line and exit 2, the videos
written before stay complete and intact, nothing half-written is read as complete, and a rerun with space
finishes the store. Needs root with mount permission (a container without CAP_SYS_ADMIN skips, saying so)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.extract import app
from pipeline.features.store import check_feature_store, open_store

VIDEOS = 6
# tmpfs charges a page per small file: the store's root takes about 4, each video 5 (its group, two arrays'
# metadata and chunks); 16 pages fill up while the third video is written.
SMALL = str(16 * os.sysconf("SC_PAGE_SIZE"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A tmpfs of SMALL bytes at tmp_path/disk; `grow()` remounts it with room to spare."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root and mount(8) to make a tiny tmpfs")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip() or made.returncode})")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=1m", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_stage_with_one_line_and_loses_no_finished_work(tmp_path, tiny_disk):
    mount, grow = tiny_disk
    src = tmp_path / "features"
    src.mkdir()
    rng = np.random.default_rng(0)
    data = {f"v{i}": rng.normal(size=(5 + i, 8)).astype(np.float32) for i in range(VIDEOS)}
    for vid, features in data.items():
        np.save(src / f"{vid}.npy", features)
    out = mount / "rgb.zarr"
    args = ["import", "--format", "npy", str(src), "--out", str(out), "--fps", "30", "--stride", "8"]

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    last = result.stderr.rstrip("\n").rsplit("\n", 1)[-1]  # after the progress bar
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert last.startswith(f"error: {out}/videos/v") and "no space left on the device" in last

    report = check_feature_store(out, sorted(data))
    done = report.complete
    assert 1 <= len(done) < VIDEOS and not report.ok(0.0), report.summary()
    stored = open_store(out).read_videos(done)  # what counts as complete is whole and checksummed
    assert all(np.array_equal(stored[v][0], data[v]) for v in done)

    grow()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert check_feature_store(out, sorted(data)).ok(0.0)
    stored = open_store(out).read_videos(sorted(data))
    assert all(np.array_equal(stored[v][0], data[v]) for v in data)


def test_an_atomic_write_to_a_full_disk_names_its_file_and_leaves_nothing(tiny_disk):
    """What train (model.pt, checkpoint.pt), the manifests and every JSON output write through."""
    import errno

    from pipeline.common import atomic_write_bytes

    mount, _ = tiny_disk
    target = mount / "train" / "model.pt"
    with pytest.raises(OSError) as err:
        atomic_write_bytes(target, b"\0" * (32 * os.sysconf("SC_PAGE_SIZE")))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert list(target.parent.iterdir()) == []  # neither a half-written model.pt nor its temporary file


def test_the_video_extract_stage_on_a_full_disk_keeps_what_it_finished(tmp_path, tiny_disk):
    import yaml
    from test_extract import PARAMS
    from test_video import make_video

    mount, grow = tiny_disk
    clips = 4  # two fit (see SMALL)
    videos = tmp_path / "videos"
    for i in range(clips):
        make_video(videos / f"clip_{i}.mp4", frames=12)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    out = mount / "out"
    args = ["videos", "--videos", str(videos), "--out", str(out), "--params", str(tmp_path / "params.yaml")]

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    last = result.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert last.startswith(f"error: {out}/rgb.zarr/videos/clip_") and "no space left on the device" in last
    done = check_feature_store(out / "rgb.zarr", [f"clip_{i}" for i in range(clips)]).complete
    assert 1 <= len(done) < clips
    before = open_store(out / "rgb.zarr").read_videos(done)

    grow()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{len(done)} already complete, {clips - len(done)} to extract" in result.output
    after = open_store(out / "rgb.zarr").read_videos(done)
    assert all(np.array_equal(before[v][0], after[v][0]) for v in done)
