"""One writer per model folder: a lock file that a second ``kerapipe train`` on the same
folder finds held, so it fails at once naming the process that holds it.

The lock is an OS file lock (``zc.lockfile``, as DVC uses): it is released when the process
ends, however it ends, so a killed run never leaves a stale lock behind. A folder on a remote
source is locked through a local file named after its URL (in the remote cache folder): that
keeps out a second run on this machine, not one on another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import zc.lockfile

from kerapipe.errors import KerapipeError

LOCK_NAME = ".kerapipe.lock"


class LockedError(KerapipeError):
    """Another process is writing the same folder."""


@contextlib.contextmanager
def exclusive(folder: Path, what: str, shown: str | None = None) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if needed) for the ``with`` block; messages
    name the locked folder as ``shown`` (default: ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        lock = zc.lockfile.LockFile(str(path), content_template="pid {pid} on {hostname}")
    except zc.lockfile.LockError:
        holder = _holder(path)
        raise LockedError(
            f"{shown or folder} is in use by another {what} ({holder}). Wait for it to finish "
            "or stop it; two runs writing one folder would mix their files. To run both at "
            "once, give this one another DATA.TRAINING_MODEL_NAME."
        ) from None
    try:
        yield
    finally:
        lock.close()


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "process unknown"
    except OSError:
        return "process unknown"
