"""TRAINING.DEVICES on a CPU host: the GPU allocation of parallel runs, with fake device
lists and real processes competing for real OS locks; and a file cache that two runs at once
never write together."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from kerapipe.config import TrainingParams
from kerapipe.devices import select_devices, visible_gpus
from tests.helpers import REPO, kill, start

CLAIM = """
import os, sys, time
from pathlib import Path
from kerapipe.devices import claim_device, select_devices
wait = None if sys.argv[2] == "forever" else float(sys.argv[2])
if sys.argv[3] == "select":
    os.environ["KERAPIPE_DEVICE_LOCKS"] = sys.argv[1]
    select_devices("auto", wait=wait)
    print("CUDA_VISIBLE_DEVICES=" + os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
else:
    print("got", claim_device(["0", "1"], Path(sys.argv[1]), wait=wait, poll=0.05), flush=True)
time.sleep(600)
"""


def claimer(lock_dir, wait="forever", how="claim"):
    """A process that claims a device and holds it until killed; it prints what it got."""
    return start([sys.executable, "-c", CLAIM, str(lock_dir), wait, how], REPO)


def first_line(process, timeout=60.0) -> str:
    os.set_blocking(process.stdout.fileno(), True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(("got", "CUDA_VISIBLE_DEVICES", "kerapipe")) or not line:
            return line.strip()
    raise AssertionError("no answer")


def test_parallel_runs_get_different_gpus_and_a_third_waits_for_a_freed_one(tmp_path):
    locks = tmp_path / "locks"
    one, two = claimer(locks), claimer(locks)
    try:
        first = first_line(one)
        assert {first, first_line(two)} == {"got 0", "got 1"}
        third = claimer(locks)
        try:
            time.sleep(1.5)  # both held: it waits, and says so only in the log
            assert third.poll() is None
            assert select.select([third.stdout], [], [], 0)[0] == []  # nothing printed yet
            kill(one)  # dies without cleaning up: the OS frees its lock
            assert first_line(third) == first
        finally:
            kill(third)
    finally:
        for process in (one, two):
            if process.poll() is None:
                kill(process)


def test_a_bounded_wait_fails_naming_the_holders(tmp_path):
    locks = tmp_path / "locks"
    holders = [claimer(locks), claimer(locks)]
    try:
        assert {first_line(p) for p in holders} == {"got 0", "got 1"}
        late = subprocess.run(
            [sys.executable, "-c", CLAIM, str(locks), "0.3", "claim"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert late.returncode != 0
        assert "every GPU is in use by another kerapipe run" in late.stderr
        for process in holders:
            assert f"pid {process.pid}" in late.stderr
    finally:
        for process in holders:
            kill(process)


def test_auto_shows_each_run_its_own_gpu_of_those_visible(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the fake host's GPUs
    locks = tmp_path / "locks"
    runs = [claimer(locks, how="select"), claimer(locks, how="select")]
    try:
        seen = {first_line(p) for p in runs}
        assert seen == {"CUDA_VISIBLE_DEVICES=3", "CUDA_VISIBLE_DEVICES=5"}
        assert sorted(p.name for p in locks.iterdir()) == ["gpu-3.lock", "gpu-5.lock"]
    finally:
        for process in runs:
            kill(process)


def test_lists_null_and_no_gpu(tmp_path, monkeypatch):
    code = (
        "import os; from kerapipe.devices import select_devices; "
        "select_devices({!r}); print(os.environ.get('CUDA_VISIBLE_DEVICES'))"
    )
    for setting, env, expected in [
        ([2, 0], None, "2,0"),  # exactly those
        (None, "1", "1"),  # null: left as it is
        ("auto", "", ""),  # no GPU: the CPU, as before
    ]:
        environ = dict(os.environ, KERAPIPE_DEVICE_LOCKS=str(tmp_path))
        environ.pop("CUDA_VISIBLE_DEVICES", None)
        if env is not None:
            environ["CUDA_VISIBLE_DEVICES"] = env
        out = subprocess.run(
            [sys.executable, "-c", code.format(setting)],
            cwd=REPO,
            env=environ,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == expected
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_devices_param_and_late_selection():
    assert TrainingParams(DEVICES="auto").DEVICES == "auto"
    assert TrainingParams(DEVICES=[1, 0]).DEVICES == [1, 0]
    for bad in ("all", [], [0, 0], [-1]):
        with pytest.raises(ValueError):
            TrainingParams(DEVICES=bad)
    import tensorflow  # noqa: F401  (as in any process that already trained)

    with pytest.raises(Exception, match="before tensorflow is imported"):
        select_devices("auto")
