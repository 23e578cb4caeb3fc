"""Write files and folders under a temporary name and rename them into place, so a crash
never leaves a half-written file where a good one was."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kerapipe.errors import StorageError

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # no space, quota, file size limit


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success, move it onto ``final``.

    ``suffix`` keeps an extension some writers insist on (Keras wants ``.keras``). The
    temporary path may become a file or a folder; a folder replaces the old one via a
    short-lived backup, since ``os.replace`` cannot overwrite a non-empty folder.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # writers create it themselves (as a file or a folder)
    try:
        yield tmp
        _move_into_place(tmp, final)
    finally:
        _remove(tmp)


@contextlib.contextmanager
def storage_errors(writing: str, then: str = "run it again") -> Iterator[None]:
    """Turn a full disk (or quota, or file-size limit) met while ``writing`` into one
    StorageError that says so and what to do; other errors pass unchanged."""
    try:
        yield
    except OSError as err:
        if err.errno not in FULL:
            raise
        raise StorageError(
            f"cannot finish writing {writing}: {err.strerror or err} ({err.filename or 'a file'}). "
            f"Free some space (or raise the quota or file size limit), then {then}."
        ) from None


def link_or_copy(source: str | os.PathLike, final: str | os.PathLike) -> None:
    """Put ``source``'s content at ``final`` atomically: a hard link (no bytes copied) where
    the file system has them, else a copy. Both names then hold the same bytes; neither may
    be changed in place afterwards (files here are only ever replaced whole)."""
    final = Path(final)
    with atomic_path(final, suffix=final.suffix) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def remove_temporaries(folder: str | os.PathLike) -> None:
    """Delete what ``atomic_path`` left in ``folder`` when its process was killed."""
    for path in Path(folder).glob(".*.tmp*"):
        _remove(path)


def _move_into_place(tmp: Path, final: Path) -> None:
    if tmp.is_dir():
        backup = final.with_name(f".{final.name}.old")
        _remove(backup)
        if final.exists():
            final.rename(backup)
        tmp.rename(final)
        _remove(backup)
    else:
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, final)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(final: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8, '\\n' line ends) to ``final``."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_bytes(final: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` (an encoded image, say) to ``final``."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
