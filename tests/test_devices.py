"""TRAINING.DEVICES on a CPU host: the GPU allocation of parallel runs, with fake device
lists and real processes competing for real OS locks; and a file cache that two runs at once
never write together. Where ``nvidia-smi`` must answer, a fake one on PATH gives canned CSV
(the real one cannot run without a GPU)."""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

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


FAKE_NVIDIA_SMI = """#!{python}
import os, sys
answers = {answers!r}
asked = " ".join(sys.argv[1:])
if asked not in answers:
    sys.exit("fake nvidia-smi: no answer to " + asked)
sys.stdout.write(answers[asked].replace("PARENT", str(os.getppid())))
"""
UUIDS = {"0": "GPU-aaaa-0000", "1": "GPU-bbbb-1111"}


def fake_nvidia_smi(folder: Path, busy: dict[str, str] | None = None) -> str:
    """PATH with an executable ``nvidia-smi`` in ``folder`` first: it lists two GPUs, 0 and 1,
    and on each GPU of ``busy`` a compute process, of that pid ("PARENT": the asking process);
    with ``busy`` None, its process query fails."""
    answers = {
        "--query-gpu=index --format=csv,noheader": "0\n1\n",
        "--query-gpu=index,uuid --format=csv,noheader": "".join(
            f"{index}, {uuid}\n" for index, uuid in UUIDS.items()
        ),
    }
    if busy is not None:
        answers["--query-compute-apps=gpu_uuid,pid,process_name --format=csv,noheader"] = "".join(
            f"{UUIDS[gpu]}, {pid}, /usr/bin/python3\n" for gpu, pid in busy.items()
        )
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(FAKE_NVIDIA_SMI.format(python=sys.executable, answers=answers))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def select_once(setting, path: str, locks: Path, **env: str) -> subprocess.CompletedProcess:
    """``select_devices(setting)`` in a fresh process with ``PATH`` and ``env`` (neither CUDA
    variable unless given); it prints CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER."""
    code = (
        "import os; from kerapipe.devices import select_devices; "
        f"select_devices({setting!r}); "
        "print(os.environ.get('CUDA_VISIBLE_DEVICES'), os.environ.get('CUDA_DEVICE_ORDER'))"
    )
    environ = dict(os.environ, PATH=path, KERAPIPE_DEVICE_LOCKS=str(locks))
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        environ.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=dict(environ, **env),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def output_until(process, prefix: str, timeout=60.0) -> list[str]:
    """The lines a ``claimer`` prints, up to the first that starts with ``prefix``."""
    os.set_blocking(process.stdout.fileno(), True)
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no {prefix} in {lines}")


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


def test_gpu_indices_are_nvidia_smis_for_cuda_too(tmp_path):
    path = fake_nvidia_smi(tmp_path / "bin", busy={})
    for setting, expected in [("auto", "0"), ([1, 0], "1,0")]:
        plain = select_once(setting, path, tmp_path / "locks")
        assert plain.stdout.split() == [expected, "PCI_BUS_ID"]
        assert "CUDA_DEVICE_ORDER" not in plain.stderr
        told = select_once(setting, path, tmp_path / "locks", CUDA_DEVICE_ORDER="FASTEST_FIRST")
        assert told.stdout.split() == [expected, "PCI_BUS_ID"]
        assert told.stderr.count("setting CUDA_DEVICE_ORDER=PCI_BUS_ID (it was FASTEST_FIRST)") == 1
    untouched = select_once(None, path, tmp_path / "locks", CUDA_DEVICE_ORDER="FASTEST_FIRST")
    assert untouched.stdout.split() == ["None", "FASTEST_FIRST"]  # null: nothing changed


def test_auto_takes_a_gpu_no_other_program_uses_and_shares_one_only_when_it_must(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path / "bin", busy={"0": "4242"}))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    locks = tmp_path / "locks"
    first = claimer(locks, how="select")
    try:
        assert output_until(first, "CUDA_VISIBLE_DEVICES")[-1] == "CUDA_VISIBLE_DEVICES=1"
        # GPU 1 locked: the second run takes GPU 0, pid 4242's too, rather than wait.
        second = claimer(locks, how="select")
        try:
            lines = output_until(second, "CUDA_VISIBLE_DEVICES")
            assert lines[-1] == "CUDA_VISIBLE_DEVICES=0"
            assert "auto shares GPU 0 with pid 4242 (/usr/bin/python3)" in " ".join(lines)
        finally:
            kill(second)
    finally:
        kill(first)


def test_busy_gpus_are_found_by_index_or_uuid_and_ignored_when_nvidia_smi_cannot_say(tmp_path):
    locks = tmp_path / "locks"
    for busy, visible, expected in [
        ({"0": "4242"}, None, "1"),  # nvidia-smi's GPUs
        ({"0": "4242"}, "0,1", "1"),  # the user's, by index
        ({"0": "4242"}, "GPU-aaaa,GPU-bbbb", "GPU-bbbb"),  # the user's, by UUID prefix
        ({"1": "4242"}, "GPU-aaaa-0000,GPU-bbbb-1111", "GPU-aaaa-0000"),  # by whole UUID
        ({"0": "PARENT"}, None, "0"),  # this very process does not count
        (None, None, "0"),  # the process query fails: as before, the first GPU
    ]:
        path = fake_nvidia_smi(tmp_path / "bin", busy)
        env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
        chosen = select_once("auto", path, locks, **env).stdout.split()
        assert chosen == [expected, "PCI_BUS_ID"], (busy, visible)
