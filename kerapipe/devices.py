"""Which GPUs a run may use (TRAINING.DEVICES), set before the backend starts.

Queued experiments (`dvc queue start -j N`) run side by side; on a host with several GPUs each
should get its own. ``auto`` locks one free GPU for the rest of the process's life and shows
the backend only that one, through ``CUDA_VISIBLE_DEVICES``, which TensorFlow and JAX read
once, when they are imported: so this runs first. The locks are OS file locks
(``zc.lockfile``, as kerapipe's folder locks), one per device in one folder that every run
of this user shares: a run that ends, however it ends, frees its device at once.
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
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listed.returncode != 0:
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


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
    until the process ends; without any GPU, the CPU, as before.
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
        chosen = claim_device(gpus, lock_dir or default_lock_dir(), wait)
        log.info("TRAINING.DEVICES: auto chose GPU %s (of %s).", chosen, ", ".join(gpus))
        os.environ["CUDA_VISIBLE_DEVICES"] = chosen
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in setting)


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
