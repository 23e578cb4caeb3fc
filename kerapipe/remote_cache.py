"""A bounded local cache of the files kerapipe fetches from remote sources, so that TensorFlow
and Pillow read local disk, and the epochs after the first (and the next run) fetch nothing.

Under the cache folder (``DATA.REMOTE_CACHE_DIR``):

- ``files/<protocol>/<path on the source>/<stem>.<version><suffix>``: a fetched file. The
  version hashes the object's size and ETag (or modification time) from the source's own
  listing, so a changed object is fetched again under a new name, never read stale; the path
  keeps the remote one readable in messages.
- ``leases/<token>.lock``: one per process that uses the cache, an OS lock that is released
  when the process ends, however it ends (as the model folder's lock, kerapipe/locks.py).
- ``work/<token>/``: that process's scratch folder (a remote run's checkpoints, a model to
  load); removed when it exits, or by the next process once its lease is found released.

Every file is written under a hidden temporary name and renamed into place, so no reader sees
part of one, whoever wrote it. Each use sets a file's access time. When the files pass the
size limit (``DATA.REMOTE_CACHE_MAX_GB``) the least recently used go first, but never one used
since the oldest running process began: a file that a running training reads is not deleted
under it (the cache then stays over its limit until that process ends, with a warning). One
process evicts at a time.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import zc.lockfile

log = logging.getLogger(__name__)

GB = 1_000_000_000
DEFAULT_MAX_GB = 10.0
STALE_TEMPORARY_S = 24 * 3600  # a temporary file this old was left by a killed process
_CACHES: dict[tuple[str, int], RemoteCache] = {}

# ``download(keys)`` -> for each key its bytes, or the exception that fetching it raised.
Downloader = Callable[[Sequence[str]], dict[str, "bytes | BaseException"]]


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/kerapipe`` (``~/.cache/kerapipe``): shared by every project and
    experiment of this user, so a queue of experiments fetches each file once."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kerapipe"


def cache_folder(setting: str | os.PathLike | None) -> Path:
    """The folder of ``DATA.REMOTE_CACHE_DIR`` (``~`` expanded), or ``default_folder()``
    when it is null; kerapipe's other caches live in it by default."""
    return Path(os.path.expanduser(str(setting))) if setting else default_folder()


def cache_at(folder: str | os.PathLike | None, max_gb: float = DEFAULT_MAX_GB) -> RemoteCache:
    """The cache in ``folder`` (None: ``default_folder()``), one object per process, so its
    lease and what it fetched are shared by every source that uses it."""
    path = cache_folder(folder)
    key = (os.path.abspath(path), int(max_gb * GB))
    if key not in _CACHES:
        _CACHES[key] = RemoteCache(path, key[1])
    return _CACHES[key]


class RemoteCache:
    """Fetched files by source, path and version; see the module docstring.

    Args:
        folder: the cache folder (created when first used).
        max_bytes: the size the fetched files may take before the least recently used go.
    """

    # How the warning of a cache over its limit names it and its setting.
    description = "remote cache"
    limit_key = "DATA.REMOTE_CACHE_MAX_GB"

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._lease: zc.lockfile.LockFile | None = None
        self.token = uuid.uuid4().hex[:16]
        self._fetched: set[Path] = set()  # unversioned files fetched by this process
        self._warned = False

    @property
    def files(self) -> Path:
        return self.folder / "files"

    def path_for(self, protocol: str, path: str, version: str | None) -> Path:
        """Where the file ``path`` (as the source names it, without its protocol) lives in
        the cache; ``version`` None stands for a file that does not exist."""
        parts = [_safe(part) for part in path.replace("://", "/").strip("/").split("/")]
        stem, suffix = _split_suffix(parts[-1])
        tag = "missing" if version is None else version or "unversioned"
        parts[-1] = f"{stem}.{tag}{suffix}"
        return self.files.joinpath(_safe(protocol), *parts)

    def fetch(
        self,
        entries: Sequence[tuple[str, Path, bool]],
        download: Downloader,
        chunk: int = 128,
    ) -> None:
        """Make sure every ``(key, target, versioned)`` entry's target exists, downloading
        the missing ones by ``key`` in chunks (``download`` fetches a chunk in parallel).
        An unversioned target is fetched again once per process. A key whose download
        raises FileNotFoundError is left without a file; other errors are raised."""
        self.lease()
        wanted = [
            (key, target)
            for key, target, versioned in entries
            if not target.is_file() or (not versioned and target not in self._fetched)
        ]
        added = 0
        for start in range(0, len(wanted), chunk):
            part = wanted[start : start + chunk]
            found = download([key for key, _ in part])
            for key, target in part:
                data = found.get(key)
                if isinstance(data, FileNotFoundError) or data is None:
                    continue
                if isinstance(data, BaseException):
                    raise data
                _write(target, data)
                self._fetched.add(target)
                added += len(data)
        self.touch(target for _, target, _ in entries)
        if added:
            log.debug("Fetched %d file(s), %d bytes, into %s.", len(wanted), added, self.files)
            self.evict()

    def touch(self, paths: Iterable[str | Path]) -> list[int]:
        """Mark files as used now (their access time; the modification time stays, so a
        ``TRAINING.CACHE`` folder that hashes it stays valid); their sizes, -1 if missing."""
        now = time.time_ns()
        sizes = []
        for path in paths:
            try:
                stat = os.stat(path)
                os.utime(path, ns=(now, stat.st_mtime_ns))
            except FileNotFoundError:
                sizes.append(-1)
                continue
            sizes.append(stat.st_size)
        return sizes

    def lease(self) -> str:
        """This process's lease token (taken on first use), for as long as it runs."""
        if self._lease is None:
            leases = self.folder / "leases"
            leases.mkdir(parents=True, exist_ok=True)
            self._release_dead_leases()
            # Locked under another name, then renamed: a lease is never seen unlocked.
            taking = leases / f"{self.token}.taking"
            self._lease = zc.lockfile.LockFile(
                str(taking), content_template="pid {pid} on {hostname}"
            )
            os.replace(taking, leases / f"{self.token}.lock")
            atexit.register(self._end_lease)
        return self.token

    def scratch(self, name: str) -> Path:
        """A fresh folder ``name`` in this process's scratch space, removed when it exits."""
        self.lease()
        path = self.folder / "work" / self.token / name
        _remove(path)
        path.mkdir(parents=True)
        return path

    def evict(self, room: int = 0) -> None:
        """Delete the least recently used files while the cache (plus ``room`` bytes about to
        be added) is over its limit, sparing those used since the oldest running process
        began; one process at a time."""
        try:
            lock = zc.lockfile.LockFile(str(self.folder / ".evict.lock"))
        except zc.lockfile.LockError:
            return  # another process is evicting now
        try:
            entries, total = self._entries()
            total += room
            if total <= self.max_bytes:
                return
            spared_from = self._oldest_lease_start()
            for used, size, path in sorted(entries):
                if total <= self.max_bytes or used >= spared_from:
                    break
                path.unlink(missing_ok=True)
                total -= size
            if total > self.max_bytes and not self._warned:
                self._warned = True
                log.warning(
                    "The %s %s holds %.1f GB, over %s (%.1f): running jobs still use those "
                    "files. Raise the limit if this run's data is larger than it, or the next "
                    "runs fill it again.",
                    self.description,
                    self.folder,
                    total / GB,
                    self.limit_key,
                    self.max_bytes / GB,
                )
        finally:
            lock.close()

    def _entries(self) -> tuple[list[tuple[int, int, Path]], int]:
        """``(last use, size, path)`` of every cached file, and their total size; temporary
        files a killed process left are removed on the way."""
        entries, total, stale = [], 0, time.time() - STALE_TEMPORARY_S
        for root, _, names in os.walk(self.files):
            for name in names:
                path = Path(root, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                if name.startswith("."):
                    if stat.st_mtime < stale:
                        path.unlink(missing_ok=True)
                    continue
                entries.append((stat.st_atime_ns, stat.st_size, path))
                total += stat.st_size
        return entries, total

    def _oldest_lease_start(self) -> int:
        """When the oldest process that holds a lease took it (ns); files used since then
        may be in use."""
        starts = []
        for lease in (self.folder / "leases").glob("*.lock"):
            if lease.stem != self.token and _released(lease):
                continue
            try:
                starts.append(lease.stat().st_mtime_ns)
            except FileNotFoundError:
                continue
        return min(starts, default=time.time_ns())

    def _release_dead_leases(self) -> None:
        """Remove the leases, and scratch folders, of processes that ended without doing so."""
        for lease in (self.folder / "leases").glob("*.lock"):
            if _released(lease):
                _remove(self.folder / "work" / lease.stem)
                lease.unlink(missing_ok=True)

    def _end_lease(self) -> None:
        _remove(self.folder / "work" / self.token)
        if self._lease is not None:
            self._lease.close()
            (self.folder / "leases" / f"{self.token}.lock").unlink(missing_ok=True)
            self._lease = None


def _released(lease: Path) -> bool:
    """Whether no process holds ``lease`` (its holder ended): taking it succeeds."""
    try:
        zc.lockfile.SimpleLockFile(str(lease)).close()
    except (zc.lockfile.LockError, OSError):
        return False
    return True


def _write(target: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file beside ``target``, then rename it there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _split_suffix(name: str) -> tuple[str, str]:
    """``name`` as its stem and its whole suffix of word-like parts, kept together so a
    reader that goes by the ending still knows the file: ``mnv2.weights.h5`` (Keras reads
    ``.weights.h5`` and ``.h5`` differently), ``data.tar.gz``; ``scan.2024.01.png`` keeps
    ``.png`` alone."""
    stem, *suffixes = name.split(".")
    kept: list[str] = []
    while suffixes and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", suffixes[-1]):
        kept.insert(0, suffixes.pop())
    stem = ".".join([stem, *suffixes])
    if not stem:  # a name that is all suffix (".env"): the whole name is the stem
        return name, ""
    return stem, "".join(f".{part}" for part in kept)


def _safe(part: str) -> str:
    """A path component that is a plain local name: no empty, '.' or '..' part; long ones
    shortened with a hash (file systems cap a name at 255 bytes)."""
    if part in ("", ".", ".."):
        return part.replace(".", "%2E") or "%"
    if len(part.encode()) > 200:
        digest = hashlib.sha256(part.encode()).hexdigest()[:16]
        return f"{part[:80]}-{digest}{Path(part).suffix[:20]}"
    return part


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
