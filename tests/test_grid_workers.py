"""The results grid's pool workers die with their parent (a real kill -9), and its folder has one writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.common import UserError
from pipeline.modelling.grid import results_lock

REPO = Path(__file__).resolve().parents[1]
# A parent that starts one spawn worker with the grid's initializer, prints the worker's pid, then keeps it busy.
PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pipeline.common import die_with_parent
pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent,
                           initargs=(os.getpid(), sys.argv[1] == "prctl"))
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 600)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its exit status waits to be collected


def poll(condition, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("how", ["prctl", "watchdog"])
def test_a_worker_dies_when_its_parent_is_killed(how):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, how], cwd=REPO, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        worker = int(parent.stdout.readline())
        assert alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        # bounded: the worker must end (at once with prctl, within the watchdog's period otherwise)
        assert poll(lambda: not alive(worker), 60), f"worker {worker} outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()


def test_the_results_folder_has_one_writer(tmp_path):
    first = results_lock(tmp_path / "results")
    with pytest.raises(UserError, match="another run is writing this results folder"):
        results_lock(tmp_path / "results")
    first.release()
    results_lock(tmp_path / "results").release()
