"""Which GPUs a run may use (TRAINING.DEVICES), set before the backend starts.

Queued experiments (`dvc queue start -j N`) run side by side; on a host with several GPUs each
should get its own. ``auto`` locks one free GPU for the rest of the process's life and shows
the backend only that one, through ``CUDA_VISIBLE_DEVICES``, which TensorFlow and JAX read
once, when they are imported: so this runs first. The locks are OS file locks
(``zc.lockfile``, as kerapipe's folder locks), one per device in one folder that every run
of this user shares: a run that ends, however it ends, frees its device at once.

GPU indices (``auto``'s, and a list in the params) are ``nvidia-smi``'s, which counts in PCI
bus order; CUDA counts fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so kerapipe sets
that too, and the GPU locked is the GPU used. ``auto`` also leaves for last the GPUs that other
programs compute on (``nvidia-smi --query-compute-apps``).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import zc.lockfile

from kerapipe.errors import KerapipeError

log = logging.getLogger("kerapipe")

LOCK_DIR_ENV = "KERAPIPE_DEVICE_LOCKS"  # a folder shared by several users, if they share GPUs
ORDER_ENV = "CUDA_DEVICE_ORDER"  # how CUDA numbers the GPUs: fastest first unless it says
PCI_ORDER = "PCI_BUS_ID"  # in PCI bus order, as nvidia-smi does
_held: list[zc.lockfile.LockFile] = []  # the locks of this process, kept until it ends


class DeviceError(KerapipeError):
    """TRAINING.DEVICES cannot be applied."""


def default_lock_dir() -> Path:
    """Where the device locks live: ``$KERAPIPE_DEVICE_LOCKS``, else ~/.cache/kerapipe/devices
    (absolute, so runs in DVC's temporary experiment folders share it)."""
    folder = os.environ.get(LOCK_DIR_ENV)
    return Path(folder) if folder else Path.home() / ".cache" / "kerapipe" / "devices"


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every GPU that
    ``nvidia-smi`` lists; none without either (a machine without an NVIDIA GPU)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip() and d.strip() != "-1"]
    return [index for (index,) in _nvidia_smi("gpu", ["index"]) or []]


def number_gpus_as_nvidia_smi() -> None:
    """Make CUDA number the GPUs as ``nvidia-smi`` does (``CUDA_DEVICE_ORDER=PCI_BUS_ID``).

    CUDA's own order is fastest first, so on a host with unlike GPUs CUDA's GPU 0 need not be
    nvidia-smi's GPU 0: the params' indices, and the GPU ``auto`` locks, would not be the GPU
    used. CUDA reads the variable once, when TensorFlow or JAX starts it. An order the user set
    is replaced, with a warning (once: afterwards the variable says PCI_BUS_ID).
    """
    given = os.environ.get(ORDER_ENV)
    if given and given != PCI_ORDER:
        log.warning(
            "TRAINING.DEVICES: setting %s=%s (it was %s) so that GPU indices are nvidia-smi's.",
            ORDER_ENV,
            PCI_ORDER,
            given,
        )
    os.environ[ORDER_ENV] = PCI_ORDER


def foreign_processes(gpus: Sequence[str]) -> dict[str, list[str]]:
    """The GPUs of ``gpus`` that other programs compute on, each with those programs
    ("pid 4242 (python)"), as ``nvidia-smi`` lists them; this process does not count.

    ``gpus`` are named as in ``CUDA_VISIBLE_DEVICES``: nvidia-smi indices, or UUIDs (whole or
    a prefix); one that matches no GPU (a MIG device) counts as free. Empty when nvidia-smi
    cannot say: then every GPU counts as free, as before kerapipe asked.
    """
    apps = _nvidia_smi("compute-apps", ["gpu_uuid", "pid", "process_name"])
    if not apps:
        return {}
    by_uuid: dict[str, list[str]] = {}
    for uuid, pid, name in apps:
        if pid != str(os.getpid()):
            by_uuid.setdefault(uuid, []).append(f"pid {pid} ({name})")
    table = _nvidia_smi("gpu", ["index", "uuid"]) or []
    named = {gpu: _uuid_of(gpu, table) for gpu in gpus}
    return {gpu: by_uuid[uuid] for gpu, uuid in named.items() if uuid in by_uuid}


def claim_device(
    devices: Sequence[str], lock_dir: Path, wait: float | None = None, poll: float = 0.2
) -> str:
    """Lock the first free device of ``devices`` for the rest of this process's life; its id.

    While every one is held by another process, wait (``None``: as long as it takes, as a
    queued experiment should), polling every ``poll`` seconds; after ``wait`` seconds raise
    DeviceError naming the holders.
    """
    if not devices:
        raise DeviceError("no device to choose from")
    lock_dir.mkdir(parents=True, exist_ok=True)
    start, told = time.monotonic(), False
    while True:
        for device in devices:
            try:
                lock = zc.lockfile.LockFile(
                    str(_lock_path(lock_dir, device)), content_template="pid {pid} on {hostname}"
                )
            except zc.lockfile.LockError:
                continue
            _held.append(lock)
            return device
        holders = _holders(devices, lock_dir)
        if wait is not None and time.monotonic() - start >= wait:
            raise DeviceError(
                f"every GPU is in use by another kerapipe run ({holders}). Wait for one to "
                f"finish, or set TRAINING.DEVICES to null (all GPUs) or a list of GPU indices."
            )
        if not told:
            log.info("Waiting for a free GPU: all %d are in use (%s).", len(devices), holders)
            told = True
        time.sleep(poll)


def select_devices(
    setting: str | Sequence[int] | None, lock_dir: Path | None = None, wait: float | None = None
) -> None:
    """Apply TRAINING.DEVICES to this process, before TensorFlow or JAX is imported.

    ``None``: every GPU, nothing changed. A list of indices: exactly those GPUs. ``auto``:
    one free GPU of those visible, locked in ``lock_dir`` (default ``default_lock_dir()``)
    until the process ends (see ``choose_gpu``); without any GPU, the CPU, as before. Indices
    are nvidia-smi's: with either, CUDA is told to count as it does
    (``number_gpus_as_nvidia_smi``).
    """
    if setting is None:
        return
    started = [name for name in ("tensorflow", "jax") if name in sys.modules]
    if started:
        raise DeviceError(
            f"TRAINING.DEVICES must be applied before {started[0]} is imported; call "
            "kerapipe.devices.select_devices first (the kerapipe commands do)."
        )
    if setting == "auto":
        gpus = visible_gpus()
        if not gpus:
            log.info("TRAINING.DEVICES: auto found no GPU: running on the CPU.")
            return
        number_gpus_as_nvidia_smi()
        chosen = choose_gpu(gpus, lock_dir or default_lock_dir(), wait)
        log.info("TRAINING.DEVICES: auto chose GPU %s (of %s).", chosen, ", ".join(gpus))
        os.environ["CUDA_VISIBLE_DEVICES"] = chosen
        return
    number_gpus_as_nvidia_smi()
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in setting)


def choose_gpu(gpus: Sequence[str], lock_dir: Path, wait: float | None = None) -> str:
    """Lock one of ``gpus`` for ``auto`` (``claim_device``), one that no other program uses
    when one is free; its id.

    The GPUs other programs compute on come last: a run takes one only when every other is
    locked by kerapipe runs, and shares it, with a warning naming the programs, rather than
    wait, since kerapipe cannot tell when such a program ends (a notebook may hold a GPU for
    days) and sharing is what a run did before kerapipe looked. It waits only while every GPU
    is locked by kerapipe runs, as ``claim_device`` does.
    """
    busy = foreign_processes(gpus)
    order = [gpu for gpu in gpus if gpu not in busy] + [gpu for gpu in gpus if gpu in busy]
    chosen = claim_device(order, lock_dir, wait)
    if chosen in busy:
        log.warning(
            "TRAINING.DEVICES: auto shares GPU %s with %s: every GPU that no other program "
            "uses is taken by a kerapipe run.",
            chosen,
            ", ".join(busy[chosen]),
        )
    elif busy:
        log.info("TRAINING.DEVICES: auto passed over GPUs other programs use (%s).", _list(busy))
    return chosen


def _holders(devices: Sequence[str], lock_dir: Path) -> str:
    found = []
    for device in devices:
        try:
            holder = _lock_path(lock_dir, device).read_text().strip()
        except OSError:
            holder = ""
        found.append(f"GPU {device}: {holder or 'process unknown'}")
    return "; ".join(found)


def _lock_path(lock_dir: Path, device: str) -> Path:
    return lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock"


def _nvidia_smi(query: str, fields: Sequence[str]) -> list[list[str]] | None:
    """nvidia-smi's rows for ``--query-{query}={fields}`` (``gpu``, ``compute-apps``), each
    its fields, the last keeping any comma (a process name may have one); rows of another shape
    are left out. None when nvidia-smi is missing or fails."""
    try:
        answer = subprocess.run(
            ["nvidia-smi", f"--query-{query}={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if answer.returncode != 0:
        return None
    lines = [line for line in answer.stdout.splitlines() if line.strip()]
    rows = [line.split(",", len(fields) - 1) for line in lines]
    return [[field.strip() for field in row] for row in rows if len(row) == len(fields)]


def _uuid_of(gpu: str, table: Sequence[Sequence[str]]) -> str | None:
    """The UUID of the GPU that a ``CUDA_VISIBLE_DEVICES`` entry names, of nvidia-smi's
    (index, UUID) ``table``: an index (CUDA's as nvidia-smi's, with PCI_BUS_ID), or a UUID or
    a prefix of one unique to it, as CUDA accepts. None when it names none."""
    found = [
        uuid
        for index, uuid in table
        if gpu == index or (gpu.startswith("GPU-") and uuid.startswith(gpu))
    ]
    return found[0] if len(found) == 1 else None


def _list(busy: dict[str, list[str]]) -> str:
    return "; ".join(f"GPU {gpu}: {', '.join(programs)}" for gpu, programs in busy.items())
